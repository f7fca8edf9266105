//! The boot sequence and main loop of PID 1, and the guarantee that init never exits:
//! everything runs under `catch_unwind`, and if the main loop ever fails init falls
//! back to an idle loop that still reaps zombies and still shuts down on signals.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::config;
use crate::console::{self, error_chain, Console};
use crate::layout::Layout;
use crate::manifest::Manifest;
use crate::modules::{self, KernelLoader, ModuleLoading};
use crate::mounts::{self, Mounted};
use crate::net;
use crate::power_button::PowerButtons;
use crate::rescue::{self, RescueShell};
use crate::shutdown::{self, Action};
use crate::signals;
use crate::supervisor::{self, Options, Supervisor};

/// The console device.
pub const CONSOLE: &str = "/dev/console";
/// How long after start init keeps looking for the power button (module probing and
/// devtmpfs nodes are asynchronous).
const POWER_BUTTON_SEARCH: Duration = Duration::from_secs(15);

/// What survives a panic in the main loop.
struct Core {
    layout: Layout,
    console: Option<Console>,
    mounted: Mounted,
}

/// Run as PID 1. Never returns.
pub fn run() -> ! {
    let mut core = Core {
        layout: Layout::system(),
        console: None,
        mounted: Mounted::default(),
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| boot(&mut core)));
    let console = core
        .console
        .clone()
        .unwrap_or_else(|| Console::open(Path::new(CONSOLE)));
    match outcome {
        Ok(()) => console.say("main loop ended; idling"),
        Err(_) => console.say("main loop panicked; idling (reaping and shutdown still work)"),
    }
    idle(&console, &core.mounted)
}

fn boot(core: &mut Core) {
    // Ctrl-Alt-Del becomes SIGINT instead of an immediate reboot.
    let _ = nix::sys::reboot::set_cad_enabled(false);
    let signal_error = signals::install(&signals::PID1_SIGNALS).err();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));

    let (mounted, mount_errors) = mounts::mount_early(core.layout.root());
    core.mounted = mounted;
    console::ensure_stdio(Path::new(CONSOLE));
    let console = Console::open(Path::new(CONSOLE));
    core.console = Some(console.clone());
    if let Some(e) = signal_error {
        console.say(error_chain(&e));
    }
    for e in &mount_errors {
        console.say(error_chain(e));
    }
    console.timeline("mounts done");

    for dir in core.layout.runtime_dirs() {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            console.say(format!("creating {}: {e}", dir.display()));
        }
    }

    let config = config::load(&core.layout.config());
    if let Ok(cfg) = &config {
        if let Err(e) = nix::unistd::sethostname(&cfg.hostname) {
            console.say(format!("setting hostname {:?}: {e}", cfg.hostname));
        }
    }
    if let Err(e) = net::link_up("lo") {
        console.say(error_chain(&e));
    }

    // The base set now; agents' own modules just before each agent first starts.
    let release = modules::kernel_release();
    let mut loading = ModuleLoading::new(core.layout.modules_dir(&release), Box::new(KernelLoader));
    let report = modules::load_listed(&core.layout, &mut loading);
    for e in &report.errors {
        console.say(error_chain(e));
    }
    console.timeline(format!("modules loaded ({})", report.loaded.len()));

    let manifest = Manifest::load(&core.layout.manifest());
    let mut reasons = Vec::new();
    if let Err(e) = &config {
        reasons.push(error_chain(e));
    }
    if let Err(e) = &manifest {
        reasons.push(error_chain(e));
    }
    let rescue_reason = (!reasons.is_empty()).then(|| reasons.join("\n"));
    let manifest = manifest.unwrap_or_default();
    let manifest = match &rescue_reason {
        Some(reason) => {
            rescue::announce(&console, reason);
            manifest.rescue_only()
        }
        None => manifest,
    };

    let opts = Options {
        log_dir: Some(core.layout.log_dir()),
        state_file: Some(core.layout.state_file()),
        rescue: rescue_reason.clone(),
        announce_ready: rescue_reason.is_none(),
        ..Options::default()
    };
    let mut sup = Supervisor::new(&manifest, console.clone(), opts);
    sup.set_module_loading(loading);
    sup.start();
    let mut shell = rescue_reason
        .as_ref()
        .and_then(|_| RescueShell::new(&core.layout));

    let started = Instant::now();
    let mut buttons = PowerButtons::find(&core.layout);
    let mut last_search = Instant::now();
    loop {
        let fds = buttons.fds();
        let outcome = sup.step(&fds, Duration::from_secs(1));
        drop(fds);
        let mut action = outcome.signals.iter().find_map(|s| signals::action_for(*s));
        for (k, ready) in outcome.extra_ready.iter().enumerate() {
            if *ready && buttons.pressed(k) {
                console.say("power button pressed");
                action = action.or(Some(Action::Poweroff));
            }
        }
        if let Some(action) = action {
            shutdown::run(action, Some(&mut sup), &core.mounted, &console);
        }
        for (pid, _) in &outcome.exited {
            if let Some(shell) = &mut shell {
                shell.exited(*pid);
            }
        }
        if let Some(shell) = &mut shell {
            shell.tick(&mut sup);
        }
        if buttons.is_empty()
            && started.elapsed() < POWER_BUTTON_SEARCH
            && last_search.elapsed() >= Duration::from_secs(1)
        {
            last_search = Instant::now();
            buttons = PowerButtons::find(&core.layout);
        }
    }
}

/// The last resort: reap, log orphans, obey shutdown signals. Never returns.
fn idle(console: &Console, mounted: &Mounted) -> ! {
    loop {
        if let Some(fd) = signals::pipe() {
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            let _ = nix::poll::poll(&mut fds, PollTimeout::from(1000u16));
        } else {
            std::thread::sleep(Duration::from_secs(1));
        }
        let action = signals::drain().into_iter().find_map(signals::action_for);
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        console.say(format!(
                            "reaped orphan pid {pid} status {}",
                            supervisor::short_status(&status)
                        ));
                    }
                }
            }
        }
        if let Some(action) = action {
            shutdown::run(action, None, mounted, console);
        }
    }
}
