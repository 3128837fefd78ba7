//! The networking flags of `run` and `create`.

use crate::netns::{NetError, NetworkMode, NetworkPlan};

#[derive(Debug, Clone, clap::Args)]
pub struct NetworkArgs {
    /// Network mode: none or host
    #[arg(long, alias = "net", default_value = "none", value_name = "MODE")]
    pub network: String,
}

impl NetworkArgs {
    pub fn plan(&self) -> Result<NetworkPlan, NetError> {
        Ok(NetworkPlan {
            mode: NetworkMode::parse(&self.network)?,
        })
    }
}
