//! `/etc/passwd` and `/etc/group`: only the accounts the image's programs look up.
//!
//! `dbus-daemon --system` drops privileges to `messagebus` (named in Debian's
//! `system.conf`), and glibc resolves that name from these files without any NSS
//! module. Ids are fixed so images are reproducible and files on disks keep owners.

/// A system account (user and its primary group of the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: &'static str,
    pub id: u32,
    pub home: &'static str,
    pub shell: &'static str,
}

/// Every account in the image.
pub const ACCOUNTS: &[Account] = &[
    Account {
        name: "root",
        id: 0,
        home: "/root",
        shell: "/bin/sh",
    },
    Account {
        name: "messagebus",
        id: 100,
        home: "/nonexistent",
        shell: "/usr/sbin/nologin",
    },
];

/// `/etc/passwd` text.
pub fn passwd(accounts: &[Account]) -> String {
    accounts
        .iter()
        .map(|a| format!("{0}:x:{1}:{1}:{0}:{2}:{3}\n", a.name, a.id, a.home, a.shell))
        .collect()
}

/// `/etc/group` text.
pub fn group(accounts: &[Account]) -> String {
    accounts
        .iter()
        .map(|a| format!("{}:x:{}:\n", a.name, a.id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines() {
        assert_eq!(
            passwd(ACCOUNTS),
            "root:x:0:0:root:/root:/bin/sh\n\
             messagebus:x:100:100:messagebus:/nonexistent:/usr/sbin/nologin\n"
        );
        assert_eq!(group(ACCOUNTS), "root:x:0:\nmessagebus:x:100:\n");
    }
}
