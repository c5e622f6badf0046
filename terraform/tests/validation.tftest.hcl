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
