//! The `/init` binary: everything lives in the library ([`hearth_init::pid1`]).

fn main() {
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!(
            "hearth-init: must run as PID 1 (it mounts file systems and reboots the machine)"
        );
        std::process::exit(2);
    }
    hearth_init::pid1::run()
}
