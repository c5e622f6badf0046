# Network for the runners and the scaler.
#
# Inbound: nothing from the internet, anywhere. The only allowed flow into the
# scaler subnet is runner subnet -> scaler API port (plus the scaler reaching the
# private endpoints beside it, and optional SSH from private admin prefixes).
#
# Outbound: not restricted by these NSGs (no outbound rule; Azure's default
# AllowInternetOutBound). The scaler needs HTTPS to GitHub's REST API and, with the
# runner scale set, to GitHub's Actions service (broker.actions.githubusercontent.com,
# *.actions.githubusercontent.com; the appliance on GHES); a firewall in the path must
# allow those (docs/terraform.md, "Egress"). tests/static/test_network.py keeps it so.
#
# Public IPs: none on any VM or NIC. The one public IP in the design is the NAT
# gateway's egress address: Azure needs a public address to send traffic to the
# internet (GitHub, package mirrors), and a NAT gateway only accepts outbound
# flows, so that address cannot be used to reach anything inside. Azure's
# "default outbound access" is switched off on both subnets, so without the NAT
# gateway (nat_gateway_enabled = false) egress must come from your own firewall
# or NVA through a route table.

locals {
  create_network = var.existing_subnets == null

  runner_subnet_id = local.create_network ? azurerm_subnet.runners[0].id : var.existing_subnets.runner_subnet_id
  scaler_subnet_id = local.create_network ? azurerm_subnet.scaler[0].id : var.existing_subnets.scaler_subnet_id
  # The VNet holding the scaler subnet gets the private DNS zone links.
  virtual_network_id = local.create_network ? azurerm_virtual_network.this[0].id : regex("(?i)^(.*)/subnets/[^/]+$", var.existing_subnets.scaler_subnet_id)[0]

  # The blob zone only for a blob private endpoint (the operator's learned-demand state).
  private_dns_zones = merge(
    {
      key_vault = "privatelink.vaultcore.azure.net"
      queue     = "privatelink.queue.core.windows.net"
    },
    var.blob_private_dns_zone_enabled ? { blob = "privatelink.blob.core.windows.net" } : {},
  )
  # Hub-spoke landing zones keep these zones centrally, already linked to the VNet:
  # then use them (existing_private_dns_zone_ids) and create none here.
  create_private_dns_zones = var.existing_private_dns_zone_ids == null
  private_dns_zone_ids     = local.create_private_dns_zones ? { for key, zone in azurerm_private_dns_zone.this : key => zone.id } : tomap(var.existing_private_dns_zone_ids)
}

resource "azurerm_virtual_network" "this" {
  count = local.create_network ? 1 : 0

  name                = "vnet-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  address_space       = var.address_space
  tags                = var.tags
}

resource "azurerm_subnet" "runners" {
  count = local.create_network ? 1 : 0

  name                            = "snet-${var.name}-runners"
  resource_group_name             = var.resource_group_name
  virtual_network_name            = azurerm_virtual_network.this[0].name
  address_prefixes                = [var.runner_subnet_address_prefix]
  default_outbound_access_enabled = false
}

resource "azurerm_subnet" "scaler" {
  count = local.create_network ? 1 : 0

  name                            = "snet-${var.name}-scaler"
  resource_group_name             = var.resource_group_name
  virtual_network_name            = azurerm_virtual_network.this[0].name
  address_prefixes                = [var.scaler_subnet_address_prefix]
  default_outbound_access_enabled = false
  # The key vault, queue and (learned mode) blob private endpoints live here; enabling network
  # policies makes the NSG below apply to them too, so runners cannot reach them.
  private_endpoint_network_policies = "Enabled"
}

resource "azurerm_network_security_group" "runners" {
  count = local.create_network ? 1 : 0

  name                = "nsg-${var.name}-runners"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  dynamic "security_rule" {
    for_each = length(var.admin_source_address_prefixes) > 0 ? [1] : []

    content {
      name                       = "AllowAdminSshInbound"
      priority                   = 200
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_address_prefixes    = var.admin_source_address_prefixes
      source_port_range          = "*"
      destination_address_prefix = var.runner_subnet_address_prefix
      destination_port_range     = "22"
    }
  }

  security_rule {
    name                       = "DenyInternetInbound"
    priority                   = 4000
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_address_prefix      = "Internet"
    source_port_range          = "*"
    destination_address_prefix = "*"
    destination_port_range     = "*"
  }

  # Runners accept no inbound connection at all: the operator never calls them.
  security_rule {
    name                       = "DenyAllOtherInbound"
    priority                   = 4096
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_address_prefix      = "*"
    source_port_range          = "*"
    destination_address_prefix = "*"
    destination_port_range     = "*"
  }
}

resource "azurerm_network_security_group" "scaler" {
  count = local.create_network ? 1 : 0

  name                = "nsg-${var.name}-scaler"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  # The runners' hooks (job started / job completed) call the operator's API.
  security_rule {
    name                       = "AllowRunnersToScalerApiInbound"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_address_prefix      = var.runner_subnet_address_prefix
    source_port_range          = "*"
    destination_address_prefix = var.scaler_subnet_address_prefix
    destination_port_range     = tostring(var.scaler_api_port)
  }

  # The scaler reaches the key vault and queue private endpoints in its own subnet.
  security_rule {
    name                       = "AllowScalerToPrivateEndpointsInbound"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_address_prefix      = var.scaler_subnet_address_prefix
    source_port_range          = "*"
    destination_address_prefix = var.scaler_subnet_address_prefix
    destination_port_range     = "443"
  }

  dynamic "security_rule" {
    for_each = length(var.admin_source_address_prefixes) > 0 ? [1] : []

    content {
      name                       = "AllowAdminSshInbound"
      priority                   = 200
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_address_prefixes    = var.admin_source_address_prefixes
      source_port_range          = "*"
      destination_address_prefix = var.scaler_subnet_address_prefix
      destination_port_range     = "22"
    }
  }

  security_rule {
    name                       = "DenyInternetInbound"
    priority                   = 4000
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_address_prefix      = "Internet"
    source_port_range          = "*"
    destination_address_prefix = "*"
    destination_port_range     = "*"
  }

  security_rule {
    name                       = "DenyAllOtherInbound"
    priority                   = 4096
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_address_prefix      = "*"
    source_port_range          = "*"
    destination_address_prefix = "*"
    destination_port_range     = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "runners" {
  count = local.create_network ? 1 : 0

  subnet_id                 = azurerm_subnet.runners[0].id
  network_security_group_id = azurerm_network_security_group.runners[0].id
}

resource "azurerm_subnet_network_security_group_association" "scaler" {
  count = local.create_network ? 1 : 0

  subnet_id                 = azurerm_subnet.scaler[0].id
  network_security_group_id = azurerm_network_security_group.scaler[0].id
}

# The only public IP of the deployment: the NAT gateway's outbound address.
# A NAT gateway never forwards unsolicited inbound traffic.
resource "azurerm_public_ip" "nat" {
  count = local.create_network && var.nat_gateway_enabled ? 1 : 0

  name                = "pip-${var.name}-nat"
  location            = var.location
  resource_group_name = var.resource_group_name
  allocation_method   = "Static"
  sku                 = "Standard"
  tags                = var.tags
}

resource "azurerm_nat_gateway" "this" {
  count = local.create_network && var.nat_gateway_enabled ? 1 : 0

  name                    = "ng-${var.name}"
  location                = var.location
  resource_group_name     = var.resource_group_name
  sku_name                = "Standard"
  idle_timeout_in_minutes = 10
  tags                    = var.tags
}

resource "azurerm_nat_gateway_public_ip_association" "this" {
  count = local.create_network && var.nat_gateway_enabled ? 1 : 0

  nat_gateway_id       = azurerm_nat_gateway.this[0].id
  public_ip_address_id = azurerm_public_ip.nat[0].id
}

resource "azurerm_subnet_nat_gateway_association" "runners" {
  count = local.create_network && var.nat_gateway_enabled ? 1 : 0

  subnet_id      = azurerm_subnet.runners[0].id
  nat_gateway_id = azurerm_nat_gateway.this[0].id
}

resource "azurerm_subnet_nat_gateway_association" "scaler" {
  count = local.create_network && var.nat_gateway_enabled ? 1 : 0

  subnet_id      = azurerm_subnet.scaler[0].id
  nat_gateway_id = azurerm_nat_gateway.this[0].id
}

# Private DNS for the private endpoints of the key vault, the queue (and the blob
# service, with blob_private_dns_zone_enabled), linked
# to the VNet of the scaler (created here or brought by the caller); none when the
# caller brings its own zones.
resource "azurerm_private_dns_zone" "this" {
  for_each = local.create_private_dns_zones ? local.private_dns_zones : {}

  name                = each.value
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  for_each = local.create_private_dns_zones ? local.private_dns_zones : {}

  name                  = "link-${var.name}-${replace(each.key, "_", "-")}"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.this[each.key].name
  virtual_network_id    = local.virtual_network_id
  registration_enabled  = false
  tags                  = var.tags
}
