//! Credentials and access: SSH public keys, password hashes, the update signing key
//! and the serial console.

use std::fmt;

use base64::Engine as _;

use super::{string_value, ValueError};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Key types accepted in `authorized_keys` lines.
const SSH_KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
];

/// An SSH public key in `authorized_keys` form: `<type> <base64> [comment]`. The
/// base64 blob must decode and name the same key type it is declared as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SshKey(String);

impl SshKey {
    /// The key line as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SshKey {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let shown: String = s.chars().take(40).collect();
        let bad = |reason: &str| ValueError::invalid("SSH public key", &shown, reason);
        let mut fields = s.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        if !SSH_KEY_TYPES.contains(&kind) {
            return Err(bad(&format!(
                "key type must be one of {}",
                SSH_KEY_TYPES.join(", ")
            )));
        }
        let blob = fields
            .next()
            .and_then(|b| BASE64.decode(b).ok())
            .ok_or_else(|| bad("the key data is missing or not base64"))?;
        // The blob starts with the key type as an SSH string: u32 length + bytes.
        let named = blob
            .get(..4)
            .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .and_then(|len| blob.get(4..4 + len));
        if named != Some(kind.as_bytes()) {
            return Err(bad("the key data does not match the declared key type"));
        }
        Ok(Self(s))
    }
}

impl fmt::Display for SshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_value!(SshKey, "SshKey", {
    "type": "string",
    "pattern": "^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\\.com) [A-Za-z0-9+/=]+( .*)?$"
});

/// A password hash in PHC form made with argon2id (`$argon2id$v=19$m=...`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        if !s.starts_with("$argon2id$") || s.split('$').count() < 5 {
            let shown: String = s.chars().take(12).collect();
            return Err(ValueError::invalid(
                "password hash",
                &format!("{shown}..."),
                "expected an argon2id PHC string starting with $argon2id$",
            ));
        }
        Ok(Self(s))
    }
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_value!(PasswordHash, "PasswordHash", {
    "type": "string", "pattern": "^\\$argon2id\\$"
});

/// An ed25519 public key, written as the base64 of its 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The raw key.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl TryFrom<String> for PublicKey {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let bytes = BASE64
            .decode(s.trim())
            .map_err(|_| ValueError::invalid("ed25519 public key", &s, "not base64"))?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            ValueError::invalid(
                "ed25519 public key",
                &s,
                format!("decodes to {} bytes, expected 32", bytes.len()),
            )
        })?;
        Ok(Self(key))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}
string_value!(PublicKey, "PublicKey", {
    "type": "string", "description": "base64 of a 32-byte ed25519 public key",
    "pattern": "^[A-Za-z0-9+/]{43}=$"
});

/// The kernel console: a device and an optional baud rate, `ttyS0,115200` or `tty0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Console {
    /// The device name under /dev (`ttyS0`).
    pub device: String,
    /// The baud rate, if given.
    pub baud: Option<u32>,
}

const BAUD_RATES: [u32; 12] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1500000,
];

impl TryFrom<String> for Console {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let bad = |reason: &str| ValueError::invalid("console", &s, reason);
        let (device, rest) = match s.split_once(',') {
            Some((d, r)) => (d, Some(r)),
            None => (s.as_str(), None),
        };
        let device_ok = device.starts_with("tty")
            && device.len() > 3
            && device.bytes().all(|b| b.is_ascii_alphanumeric());
        if !device_ok {
            return Err(bad("device must look like ttyS0, ttyAMA0 or tty0"));
        }
        let baud = match rest {
            None => None,
            Some(r) => {
                // Only the leading digits are the baud; `n8` parity/bits may follow.
                let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
                let tail = &r[digits.len()..];
                let baud = digits.parse().ok().filter(|b| BAUD_RATES.contains(b));
                if baud.is_none() || !matches!(tail, "" | "n8" | "n8r") {
                    return Err(bad("expected <device>,<baud> like ttyS0,115200"));
                }
                baud
            }
        };
        Ok(Self {
            device: device.to_owned(),
            baud,
        })
    }
}

impl fmt::Display for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.baud {
            Some(b) => write!(f, "{},{b}", self.device),
            None => f.write_str(&self.device),
        }
    }
}
string_value!(Console, "Console", {
    "type": "string", "pattern": "^tty[A-Za-z0-9]+(,[0-9]+)?$"
});

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically real ed25519 `authorized_keys` line (random key material).
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKrlkO5A1FVnsP2AMUlunBaaPu7JG2Z3fzxy6umCjZsK admin@laptop";

    #[test]
    fn ssh_keys() {
        assert!(SshKey::try_from(ED25519.to_owned()).is_ok());
        let mislabeled = ED25519.replace("ssh-ed25519 ", "ssh-rsa ");
        assert!(SshKey::try_from(mislabeled).is_err());
        assert!(SshKey::try_from("ssh-dss AAAA".to_owned()).is_err());
        assert!(SshKey::try_from("ssh-ed25519 !!!".to_owned()).is_err());
    }

    #[test]
    fn keys_and_consoles() {
        let k = "CoLQ9Nd4ScNPDa1BwUsfiulwQZ12KexyGF4hxxaM3gU=";
        assert_eq!(PublicKey::try_from(k.to_owned()).unwrap().to_string(), k);
        assert!(PublicKey::try_from("AAAA".to_owned()).is_err());
        let c = Console::try_from("ttyS0,115200".to_owned()).unwrap();
        assert_eq!((c.device.as_str(), c.baud), ("ttyS0", Some(115200)));
        assert_eq!(Console::try_from("tty0".to_owned()).unwrap().baud, None);
        assert!(Console::try_from("ttyS0,1234".to_owned()).is_err());
        assert!(Console::try_from("/dev/ttyS0".to_owned()).is_err());
        assert!(PasswordHash::try_from("$6$salt$hash".to_owned()).is_err());
        assert!(
            PasswordHash::try_from("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA".to_owned())
                .is_ok()
        );
    }
}
