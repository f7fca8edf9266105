//! Reading a guest's serial console log: the boot markers of the README contract.
//!
//! `hearth-init: ready in X.XXs` means the boot succeeded; a kernel panic,
//! `hearth-init: rescue: ...` or `hearth-init: agent NAME failed ...` means it did not.
//! Timeline lines look like `hearth-init: [ 1.23s] message`.

/// Printed exactly once by init when every agent is ready.
pub const READY_MARKER: &str = "hearth-init: ready in";

/// What a console line says about the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ready,
    Failed(String),
    Other,
}

/// Classify one line.
pub fn classify(line: &str) -> Event {
    if line.contains(READY_MARKER) {
        return Event::Ready;
    }
    if line.contains("Kernel panic") {
        return Event::Failed("kernel panic".into());
    }
    if let Some(i) = line.find("hearth-init: rescue:") {
        return Event::Failed(line[i..].trim().to_string());
    }
    if let Some(i) = line.find("hearth-init: agent ") {
        let rest = &line[i..];
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.get(3) == Some(&"failed") || words.get(3).is_some_and(|w| w.starts_with("failed"))
        {
            return Event::Failed(rest.trim().to_string());
        }
    }
    Event::Other
}

/// A timeline line: its time and message.
pub fn timeline(line: &str) -> Option<(f64, String)> {
    let i = line.find("hearth-init: [")?;
    let rest = &line[i + "hearth-init: [".len()..];
    let (time, msg) = rest.split_once(']')?;
    let secs: f64 = time.trim().trim_end_matches('s').parse().ok()?;
    Some((secs, msg.trim().to_string()))
}

/// The `ready in` seconds init reports.
pub fn ready_secs(line: &str) -> Option<f64> {
    let i = line.find(READY_MARKER)?;
    let rest = line[i + READY_MARKER.len()..].trim();
    rest.trim_end_matches('s')
        .split_whitespace()
        .next()?
        .trim_end_matches('s')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(classify("hearth-init: ready in 1.52s"), Event::Ready);
        assert_eq!(ready_secs("hearth-init: ready in 1.52s"), Some(1.52));
        assert_eq!(
            classify("[    2.1] Kernel panic - not syncing: Attempted to kill init!"),
            Event::Failed("kernel panic".into())
        );
        assert_eq!(
            classify("hearth-init: rescue: config: bad"),
            Event::Failed("hearth-init: rescue: config: bad".into())
        );
        assert_eq!(
            classify("hearth-init: agent dbus failed: exited with 1"),
            Event::Failed("hearth-init: agent dbus failed: exited with 1".into())
        );
        assert_eq!(classify("hearth-init: agent dbus ready"), Event::Other);
        assert_eq!(
            timeline("hearth-init: [ 0.42s] mounted /proc"),
            Some((0.42, "mounted /proc".into()))
        );
        assert_eq!(timeline("random"), None);
    }
}
