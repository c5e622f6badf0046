# Plan-only tests of the root module's input contract, with a mocked azurerm
# provider (no Azure access). Run with terraform >= 1.9: `cd terraform &&
# terraform init -backend=false && terraform test`. They are not run on this
# repository's development machine, which cannot install terraform; ci.yml runs them.

mock_provider "azurerm" {
  mock_data "azurerm_resource_group" {
    defaults = {
      id       = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"
      location = "westeurope"
    }
  }
  mock_data "azurerm_client_config" {
    defaults = {
      tenant_id = "00000000-0000-0000-0000-000000000001"
      object_id = "00000000-0000-0000-0000-000000000002"
    }
  }
}

variables {
  resource_group_name  = "rg-test"
  vmss_runner_name     = "vmss-gh-runners"
  vmss_scaler_name     = "vm-gh-scaler"
  admin_ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTests test@example"
  github_repository    = "octo-org/octo-repo"
  operator_package = {
    url    = "https://example.invalid/operator"
    sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
  }
}

run "valid_repository_configuration_plans" {
  command = plan

  assert {
    condition     = output.scaler_api_url != ""
    error_message = "The scaler API URL must be an output."
  }
}

run "scale_set_is_the_default_and_runs_on_is_its_name" {
  command = plan

  assert {
    condition     = output.runs_on == "vmss-gh-runners"
    error_message = "With the default github_demand (scale_set), runs_on must be the scale set's name, by default vmss_runner_name."
  }
}

run "pool_min_zero_plans_with_the_scale_set" {
  command = plan
  variables {
    github_demand      = "scale_set"
    pool_min_instances = 0
  }
}

run "pool_min_zero_is_refused_without_a_demand_source" {
  command = plan
  variables {
    github_demand      = "none"
    pool_min_instances = 0
  }
  expect_failures = [var.pool_min_instances]
}

run "pool_min_must_not_be_negative" {
  command = plan
  variables {
    pool_min_instances = -1
  }
  expect_failures = [var.pool_min_instances]
}

run "demand_is_scale_set_or_none" {
  command = plan
  variables {
    github_demand = "listener"
  }
  expect_failures = [var.github_demand]
}

run "runs_on_is_the_label_list_without_a_scale_set" {
  command = plan
  variables {
    github_demand = "none"
  }

  assert {
    condition     = jsonencode(output.runs_on) == jsonencode(["self-hosted", "linux", "x64"])
    error_message = "With github_demand = \"none\", runs_on must be the runner labels."
  }
}

run "runs_on_follows_a_given_scale_set_name" {
  command = plan
  variables {
    scale_set_name = "linux-x64_2.large"
  }

  assert {
    condition     = output.runs_on == "linux-x64_2.large"
    error_message = "runs_on must be the scale_set_name given."
  }
}

run "scale_set_name_follows_github_rules" {
  command = plan
  variables {
    scale_set_name = "linux x64"
  }
  expect_failures = [var.scale_set_name]
}

run "scale_set_name_needs_the_scale_set" {
  command = plan
  variables {
    github_demand  = "none"
    scale_set_name = "linux-x64"
  }
  expect_failures = [var.scale_set_name]
}

run "pool_max_is_bounded" {
  command = plan
  variables {
    pool_max_instances = 1001
  }
  expect_failures = [var.pool_max_instances]
}

run "pool_min_must_not_exceed_max" {
  command = plan
  variables {
    pool_min_instances = 5
    pool_max_instances = 4
  }
  expect_failures = [data.azurerm_resource_group.this]
}

run "free_target_percentage_must_be_below_100" {
  command = plan
  variables {
    pool_free_target_percentage = 100
  }
  expect_failures = [var.pool_free_target_percentage]
}

run "free_target_percentage_must_not_be_negative" {
  command = plan
  variables {
    pool_free_target_percentage = -1
  }
  expect_failures = [var.pool_free_target_percentage]
}

run "labels_must_not_be_a_comma_separated_string" {
  command = plan
  variables {
    runner_labels = ["self-hosted, linux"]
  }
  expect_failures = [var.runner_labels]
}

run "labels_must_not_be_empty_without_a_scale_set" {
  command = plan
  variables {
    github_demand = "none"
    runner_labels = []
  }
  expect_failures = [var.runner_labels]
}

run "scale_set_may_have_no_extra_labels" {
  command = plan
  variables {
    runner_labels = []
  }
}

run "repository_must_be_owner_slash_name" {
  command = plan
  variables {
    github_repository = "just-a-name"
  }
  expect_failures = [var.github_repository]
}

run "repository_and_organization_are_exclusive" {
  command = plan
  variables {
    github_organization = "octo-org"
  }
  expect_failures = [data.azurerm_resource_group.this]
}

run "runner_group_needs_organization_scope" {
  command = plan
  variables {
    github_runner_group = "azure"
  }
  expect_failures = [data.azurerm_resource_group.this]
}

run "managed_secret_needs_a_credential" {
  command = plan
  variables {
    manage_github_credential_secret = true
  }
  expect_failures = [data.azurerm_resource_group.this]
}

run "vmss_name_follows_azure_rules" {
  command = plan
  variables {
    vmss_runner_name = "-bad_name-"
  }
  expect_failures = [var.vmss_runner_name]
}

run "scaler_name_follows_azure_rules" {
  command = plan
  variables {
    vmss_scaler_name = "scaler.with.dots"
  }
  expect_failures = [var.vmss_scaler_name]
}

run "operator_package_needs_https_and_sha256" {
  command = plan
  variables {
    operator_package = {
      url    = "http://example.invalid/operator"
      sha256 = "not-a-checksum"
    }
  }
  expect_failures = [var.operator_package]
}

run "ssh_key_must_be_an_openssh_public_key" {
  command = plan
  variables {
    admin_ssh_public_key = "hunter2"
  }
  expect_failures = [var.admin_ssh_public_key]
}

run "operator_durations_are_humantime" {
  command = plan
  variables {
    operator = {
      scale_in_delay = "five minutes"
    }
  }
  expect_failures = [var.operator]
}

run "key_vault_firewall_refuses_the_whole_internet" {
  command = plan
  variables {
    key_vault = {
      allowed_ip_ranges = ["0.0.0.0/0"]
    }
  }
  expect_failures = [var.key_vault]
}

run "free_target_percentage_is_a_whole_number" {
  command = plan
  variables {
    pool_free_target_percentage = 12.5
  }
  expect_failures = [var.pool_free_target_percentage]
}

# Parked VMs (pool_parked_instances, pool_schedules, pool_learned, pool_learned_tuning,
# pool_prices) and the OS disk they need: Azure cannot stop-deallocate a VM whose OS disk
# is ephemeral.

run "a_pool_that_never_parks_keeps_the_ephemeral_disk" {
  command = plan

  assert {
    condition     = output.runner_os_disk.ephemeral && output.runner_os_disk.caching == "ReadOnly" && output.runner_os_disk.storage_type == "Standard_LRS"
    error_message = "Without parking the runners keep the ephemeral OS disk (caching ReadOnly, Standard_LRS base disk), as before."
  }
}

run "parked_instances_give_the_runners_a_managed_disk" {
  command = plan
  variables {
    pool_min_instances    = 1
    pool_parked_instances = 3
  }

  assert {
    condition     = !output.runner_os_disk.ephemeral && output.runner_os_disk.caching == "ReadWrite" && output.runner_os_disk.storage_type == "StandardSSD_LRS"
    error_message = "A parking pool needs a managed OS disk (caching ReadWrite, Standard SSD by default)."
  }
}

run "a_parking_schedule_alone_gives_the_runners_a_managed_disk" {
  command = plan
  variables {
    pool_schedules = [
      { cron = "* 7-18 * * 1-5", timezone = "Europe/Berlin", min_instances = 2, parked_instances = 4 },
    ]
  }

  assert {
    condition     = !output.runner_os_disk.ephemeral
    error_message = "A schedule entry with parked_instances > 0 parks VMs: the OS disk must be managed."
  }
}

run "a_schedule_that_parks_nothing_keeps_the_ephemeral_disk" {
  command = plan
  variables {
    pool_schedules = [
      { cron = "* 0-5 * * *", timezone = "UTC", free_target_percentage = 0 },
    ]
  }

  assert {
    condition     = output.runner_os_disk.ephemeral
    error_message = "A schedule without parked_instances parks nothing: the OS disk stays ephemeral."
  }
}

run "learned_mode_plans_with_a_managed_disk" {
  command = plan
  variables {
    pool_learned = true
  }

  assert {
    condition     = !output.runner_os_disk.ephemeral
    error_message = "The learned mode parks VMs: the OS disk must be managed."
  }
}

run "an_explicit_storage_type_is_kept_with_parking" {
  command = plan
  variables {
    pool_parked_instances = 1
    runners = {
      os_disk = {
        storage_type = "Premium_ZRS"
      }
    }
  }

  assert {
    condition     = output.runner_os_disk.storage_type == "Premium_ZRS" && !output.runner_os_disk.ephemeral
    error_message = "A storage_type given is used for the managed disk."
  }
}

run "ephemeral_disk_is_refused_with_parked_instances" {
  command = plan
  variables {
    pool_parked_instances = 1
    runners = {
      os_disk = {
        ephemeral = true
      }
    }
  }
  expect_failures = [var.runners]
}

run "ephemeral_disk_is_refused_with_a_parking_schedule" {
  command = plan
  variables {
    pool_schedules = [
      { cron = "* 7-18 * * 1-5", timezone = "Europe/Berlin", parked_instances = 2 },
    ]
    runners = {
      os_disk = {
        ephemeral = true
      }
    }
  }
  expect_failures = [var.runners]
}

run "ephemeral_disk_is_refused_with_the_learned_mode" {
  command = plan
  variables {
    pool_learned = true
    runners = {
      os_disk = {
        ephemeral = true
      }
    }
  }
  expect_failures = [var.runners]
}

run "parked_instances_are_a_whole_number" {
  command = plan
  variables {
    pool_parked_instances = 1.5
  }
  expect_failures = [var.pool_parked_instances]
}

run "parked_instances_must_not_be_negative" {
  command = plan
  variables {
    pool_parked_instances = -1
  }
  expect_failures = [var.pool_parked_instances]
}

run "min_plus_parked_must_not_exceed_max" {
  command = plan
  variables {
    pool_min_instances    = 2
    pool_max_instances    = 10
    pool_parked_instances = 9
  }
  expect_failures = [var.pool_parked_instances]
}

run "schedule_cron_has_five_fields" {
  command = plan
  variables {
    pool_schedules = [
      { cron = "7-18 * * 1-5", timezone = "Europe/Berlin", min_instances = 2 },
    ]
  }
  expect_failures = [var.pool_schedules]
}

run "schedule_timezone_is_an_iana_name" {
  command = plan
  variables {
    pool_schedules = [
      { cron = "* 7-18 * * 1-5", timezone = "CET", min_instances = 2 },
    ]
  }
  expect_failures = [var.pool_schedules]
}

run "schedule_counts_are_whole_numbers" {
  command = plan
  variables {
    pool_schedules = [
      { cron = "* 7-18 * * 1-5", timezone = "Europe/Berlin", parked_instances = 0.5 },
    ]
  }
  expect_failures = [var.pool_schedules]
}

run "schedule_free_target_percentage_is_below_100" {
  command = plan
  variables {
    pool_schedules = [
      { cron = "* 0-5 * * *", timezone = "UTC", free_target_percentage = 100 },
    ]
  }
  expect_failures = [var.pool_schedules]
}

run "schedule_min_plus_parked_must_not_exceed_max" {
  command = plan
  variables {
    pool_max_instances = 10
    pool_schedules = [
      { cron = "* 7-18 * * 1-5", timezone = "Europe/Berlin", min_instances = 6, parked_instances = 5 },
    ]
  }
  expect_failures = [var.pool_schedules]
}

run "schedule_min_zero_needs_the_scale_set" {
  command = plan
  variables {
    github_demand = "none"
    pool_schedules = [
      { cron = "* * * * 0,6", timezone = "UTC", min_instances = 0 },
    ]
  }
  expect_failures = [var.pool_schedules]
}

run "learned_mode_and_schedules_are_exclusive" {
  command = plan
  variables {
    pool_learned = true
    pool_schedules = [
      { cron = "* 7-18 * * 1-5", timezone = "Europe/Berlin", parked_instances = 2 },
    ]
  }
  expect_failures = [var.pool_learned]
}

run "learned_mode_with_a_hubs_zones_needs_the_blob_zone" {
  command = plan
  variables {
    pool_learned = true
    network = {
      existing_private_dns_zone_ids = {
        key_vault = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-hub/providers/Microsoft.Network/privateDnsZones/privatelink.vaultcore.azure.net"
        queue     = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-hub/providers/Microsoft.Network/privateDnsZones/privatelink.queue.core.windows.net"
      }
    }
  }
  expect_failures = [var.network]
}

# The learned mode's tuning (pool_learned_tuning): only with pool_learned, each field by
# the operator's rule; durations as <number><unit> parts with units s, m, h, d.

run "learned_mode_with_every_tuning_field_plans" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      slot             = "2h"
      burst_window     = "2m"
      warm_quantile    = 0.1
      reserve_quantile = 0.9
      lead             = "30m"
      half_life        = "14d"
      history_weeks    = 8
      save_period      = "1m 30s"
    }
  }
}

run "learned_tuning_needs_the_learned_mode" {
  command = plan
  variables {
    pool_learned_tuning = {
      slot = "4h"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_slot_must_divide_a_day" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      slot = "7m"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_slot_must_be_whole_minutes" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      slot = "90s"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_durations_are_number_unit_parts" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      slot = "4 hours"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_burst_window_is_at_least_30_seconds" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      burst_window = "10s"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_burst_window_is_at_most_an_hour" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      burst_window = "1h 1s"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_warm_quantile_not_above_reserve" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      warm_quantile    = 0.6
      reserve_quantile = 0.5
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_quantiles_are_from_0_to_1" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      reserve_quantile = 1.5
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_history_is_at_least_a_week" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      history_weeks = 0
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_history_is_at_most_520_weeks" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      history_weeks = 521
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_lead_is_less_than_a_day" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      lead = "1d"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_half_life_is_more_than_zero" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      half_life = "0s"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "learned_save_period_is_at_least_30_seconds" {
  command = plan
  variables {
    pool_learned = true
    pool_learned_tuning = {
      save_period = "10s"
    }
  }
  expect_failures = [var.pool_learned_tuning]
}

run "prices_keep_parked_below_running" {
  command = plan
  variables {
    pool_prices = {
      running_per_hour = 0.1
      parked_per_hour  = 0.2
    }
  }
  expect_failures = [var.pool_prices]
}

run "prices_currency_is_an_iso_code" {
  command = plan
  variables {
    pool_prices = {
      currency         = "usd"
      running_per_hour = 0.2
      parked_per_hour  = 0.01
    }
  }
  expect_failures = [var.pool_prices]
}
