//! Stateful HTTP fakes of Azure Resource Manager (VM scale sets), Key Vault and IMDS.
