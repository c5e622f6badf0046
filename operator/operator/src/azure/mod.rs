//! Real Azure clients for the operator's ports: credentials ([`identity`]), the runner scale
//! set through Resource Manager ([`arm`]) and the GitHub credential in Key Vault ([`keyvault`]).

pub mod arm;
pub mod identity;
pub mod keyvault;

pub use arm::{
    ArmError, ArmScaleSet, ArmTimings, EndpointError, NotAScaleSetId, ScaleSetInfo, UniformOnly, COMPUTE_API_VERSION,
    NETWORK_API_VERSION,
};
pub use identity::{credential, CredentialSource, IdentityError};
pub use keyvault::{KeyVaultError, KeyVaultSecrets};
