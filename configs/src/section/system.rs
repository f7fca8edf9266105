//! `[system]`: identity and administrative access of the appliance.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{path, Findings};
use crate::value::{list, Console, Hostname, PasswordHash, SshKey, Timezone, UserName};
use crate::Config;

/// `[system]`: host name, time zone, the administrator account and the console.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct System {
    /// The appliance's host name (RFC 1123).
    pub hostname: Hostname,
    /// IANA time zone, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default)]
    pub timezone: Timezone,
    /// The administrator account.
    #[serde(default)]
    pub admin: Admin,
    /// Kernel console, e.g. `ttyS0,115200`. Absent: the kernel's default.
    #[serde(default)]
    pub console: Option<Console>,
}

/// `[system.admin]`: the one administrative login.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Login name. Default `admin`.
    #[serde(default = "default_user")]
    pub user: UserName,
    /// `authorized_keys` lines allowed to log in over SSH.
    #[serde(default, deserialize_with = "list")]
    pub ssh_keys: Vec<SshKey>,
    /// argon2id PHC hash for console (and web admin) login.
    #[serde(default)]
    pub password_hash: Option<PasswordHash>,
}

fn default_user() -> UserName {
    UserName::try_from("admin".to_owned()).expect("valid default user name")
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            user: default_user(),
            ssh_keys: Vec::new(),
            password_hash: None,
        }
    }
}

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let admin = &cfg.system.admin;
    let ssh_zone = cfg
        .network
        .firewall
        .allow
        .iter()
        .position(|a| a.services.contains(&crate::section::network::Service::Ssh));
    if let Some(i) = ssh_zone {
        if admin.ssh_keys.is_empty() {
            out.push(
                path("network.firewall.allow").at(i).key("services"),
                format!(
                    "ssh is allowed here but system.admin.ssh_keys is empty: nobody could log in as {:?}",
                    admin.user.as_str()
                ),
            );
        }
    }
}
