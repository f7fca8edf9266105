//! The ACPI power button (`button` + `evdev` modules): a KEY_POWER press on an input
//! device named "Power Button" means poweroff, which is how QMP `system_powerdown`
//! and a real button reach init without acpid.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::layout::Layout;

/// The input device name ACPI gives the button.
pub const DEVICE_NAME: &str = "Power Button";
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit: timeval (16) + type (2) + code (2) + value (4).
const EVENT_SIZE: usize = 24;

/// Open power-button devices.
#[derive(Debug, Default)]
pub struct PowerButtons {
    devices: Vec<File>,
}

impl PowerButtons {
    /// Find every input device called [`DEVICE_NAME`] and open its event node.
    pub fn find(layout: &Layout) -> Self {
        let mut devices = Vec::new();
        let Ok(entries) = std::fs::read_dir(layout.sys_class_input()) else {
            return Self { devices };
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("event"))
            .collect();
        names.sort();
        for event in names {
            let name_file = layout.sys_class_input().join(&event).join("device/name");
            let is_button = std::fs::read_to_string(name_file)
                .map(|n| n.trim() == DEVICE_NAME)
                .unwrap_or(false);
            if !is_button {
                continue;
            }
            if let Ok(file) = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
                .open(layout.dev().join("input").join(&event))
            {
                devices.push(file);
            }
        }
        Self { devices }
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.devices.iter().map(|f| f.as_fd()).collect()
    }

    /// Read pending events from device `index`; true if the button was pressed.
    pub fn pressed(&mut self, index: usize) -> bool {
        let Some(file) = self.devices.get_mut(index) else {
            return false;
        };
        let mut buf = [0u8; EVENT_SIZE * 16];
        let mut pressed = false;
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            pressed |= contains_power_press(&buf[..n]);
        }
        pressed
    }
}

/// Whether a buffer of `input_event`s holds a KEY_POWER press.
pub fn contains_power_press(events: &[u8]) -> bool {
    events.chunks_exact(EVENT_SIZE).any(|ev| {
        let kind = u16::from_ne_bytes([ev[16], ev[17]]);
        let code = u16::from_ne_bytes([ev[18], ev[19]]);
        let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
        kind == EV_KEY && code == KEY_POWER && value == 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut ev = vec![0u8; 16];
        ev.extend(kind.to_ne_bytes());
        ev.extend(code.to_ne_bytes());
        ev.extend(value.to_ne_bytes());
        ev
    }

    #[test]
    fn detects_the_press_not_the_release() {
        let mut press = event(EV_KEY, KEY_POWER, 1);
        press.extend(event(0, 0, 0));
        assert!(contains_power_press(&press));
        assert!(!contains_power_press(&event(EV_KEY, KEY_POWER, 0)));
        assert!(!contains_power_press(&event(EV_KEY, 30, 1)));
    }

    #[test]
    fn finds_the_device_by_name() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::under(root.path());
        for (node, name) in [
            ("event0", "AT Translated Set 2 keyboard"),
            ("event1", "Power Button"),
        ] {
            let dev = layout.sys_class_input().join(node).join("device");
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join("name"), format!("{name}\n")).unwrap();
            std::fs::create_dir_all(layout.dev().join("input")).unwrap();
            std::fs::write(
                layout.dev().join("input").join(node),
                event(EV_KEY, KEY_POWER, 1),
            )
            .unwrap();
        }
        let mut buttons = PowerButtons::find(&layout);
        assert_eq!(buttons.fds().len(), 1);
        assert!(buttons.pressed(0));
    }
}
