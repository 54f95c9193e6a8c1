//! `/init` mode of bb-client: what the imaging initramfs runs as PID 1 (or `bb-client --init`
//! from a distribution's initramfs hook).
//!
//! ```text
//! let mut cfg = init::InitConfig::new();
//! if let Err(e) = init::prepare(&mut cfg) {
//!     init::finish(cfg.done, false, e.message().as_bytes());
//! }
//! // receive: server cfg.server, target cfg.dev_path(), group cfg.group,
//! //          port cfg.port, interface cfg.iface_name(), timeout cfg.timeout
//! let ok = ...;
//! init::finish(cfg.done, ok, b"/dev/vda: 67108864 bytes written and verified");
//! ```
//!
//! `prepare` mounts /proc, /sys and /dev (devtmpfs) unless present, loads the modules listed in
//! /lib/modules/bb-modules.order, parses /proc/cmdline (`bb.*`, `ip=`), brings up lo and the
//! NIC (static address from `ip=`, or its own DHCP client), adds a default route and a route for
//! 224.0.0.0/4, and waits for the target device. `finish` prints `bb: OK ...` or
//! `bb: FAILED ...`, syncs, and powers off / reboots / halts / runs a shell. After a failure it
//! never reboots or powers off (a reboot could boot a half-written disk): it halts with the
//! reason on the console, or runs /bin/sh when `bb.done=shell` and a shell exists.
//!
//! No heap: every buffer is a fixed array; no std.

pub mod cmdline;
pub mod dhcp;
pub mod dhcp_packet;
pub mod modalias;
pub mod net;
pub mod sys;
pub mod syscalls;

use crate::disks;
use crate::os;
pub use cmdline::{Cmdline, CmdlineError, DoneAction, FixedStr, IpConfig, IpMode};
use sys::Line;

/// The result of [`prepare`]: what the receiver needs, in fixed buffers.
#[derive(Clone, Copy, Debug)]
pub struct InitConfig {
    /// `bb.server=`: where status reports go.
    pub server: [u8; 4],
    /// `bb.dev=`: the target block device, NUL-terminated.
    pub dev: FixedStr<{ cmdline::DEV_MAX }>,
    /// `bb.group=`: multicast group to join, if any.
    pub group: Option<[u8; 4]>,
    /// `bb.port=`: data port, if not the default.
    pub port: Option<u16>,
    /// `bb.done=`: what to do after success (default poweroff).
    pub done: DoneAction,
    /// `bb.timeout=` in seconds (default 30): waits for the NIC, the device and DHCP.
    pub timeout: u32,
    /// `bb.key=`: the pre-shared key (else the one baked into the initramfs, if any).
    pub key: Option<bb_proto::wire::auth::PresharedKey>,
    /// `bb.digest=`: the only image digest accepted.
    pub digest: Option<[u8; 32]>,
    /// `bb.assume-zeroed`: the disk already reads as zeros (no BLKZEROOUT of zero ranges).
    pub assume_zeroed: bool,
    /// The `ip=` parameter as given (mode Dhcp when absent).
    pub ip: IpConfig,
    /// The interface that was configured (NUL-terminated), e.g. "eth0".
    pub iface: FixedStr<{ cmdline::IFNAMSIZ }>,
    /// The address, netmask and gateway in use (from ip= or DHCP); zero with ip=off.
    pub addr: [u8; 4],
    pub netmask: [u8; 4],
    pub gateway: Option<[u8; 4]>,
    /// Whether we run as PID 1 (the imaging initramfs) rather than from a distribution hook.
    pub pid1: bool,
}

impl InitConfig {
    pub const fn new() -> InitConfig {
        InitConfig {
            server: [0; 4],
            dev: FixedStr::new(),
            group: None,
            port: None,
            done: DoneAction::Poweroff,
            timeout: cmdline::DEFAULT_TIMEOUT,
            key: None,
            digest: None,
            assume_zeroed: false,
            ip: IpConfig::dhcp(),
            iface: FixedStr::new(),
            addr: [0; 4],
            netmask: [0; 4],
            gateway: None,
            pid1: false,
        }
    }

    /// Fills the `bb.*`/`ip=` fields from a parsed command line.
    pub fn apply(&mut self, c: &Cmdline) {
        self.server = c.server.unwrap_or([0; 4]);
        self.dev = c.dev;
        self.group = c.group;
        self.port = c.port;
        self.done = c.done;
        self.timeout = c.timeout;
        self.key = c.key;
        self.digest = c.digest;
        self.assume_zeroed = c.assume_zeroed;
        self.ip = c.ip;
    }

    /// The target device path without NUL, e.g. b"/dev/vda".
    pub fn dev_path(&self) -> &[u8] {
        self.dev.as_bytes()
    }
    /// The interface name without NUL (empty if none was configured).
    pub fn iface_name(&self) -> &[u8] {
        self.iface.as_bytes()
    }
}

/// Why [`prepare`] failed. [`InitError::message`] is the text for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// /proc/cmdline could not be read.
    NoCmdline,
    /// A `bb.*` or `ip=` parameter is missing or malformed.
    Cmdline(CmdlineError),
    /// No network interface appeared within bb.timeout (or the named one did not).
    NoNic,
    /// An ioctl configuring the interface failed.
    NetConfig(&'static str),
    /// The DHCP client got no lease within bb.timeout.
    Dhcp(&'static str),
    /// The bb.dev= device did not appear within bb.timeout.
    NoDevice,
}

impl InitError {
    pub fn message(&self) -> &'static str {
        match self {
            InitError::NoCmdline => "cannot read /proc/cmdline",
            InitError::Cmdline(e) => e.message(),
            InitError::NoNic => {
                "no network interface appeared (is the NIC driver in the initramfs? see MODULES= in initramfs/build.sh)"
            }
            InitError::NetConfig(m) => m,
            InitError::Dhcp(m) => m,
            InitError::NoDevice => {
                "the bb.dev= device did not appear within bb.timeout= seconds (wrong name? disk driver missing from the initramfs?)"
            }
        }
    }
}

/// Prepares the machine for imaging (see the module documentation). Prints progress lines to
/// the console. On error, `cfg.done` is still set when the command line could be parsed, so the
/// caller can pass it to [`finish`].
pub fn prepare(cfg: &mut InitConfig) -> Result<(), InitError> {
    cfg.pid1 = sys::is_pid1();
    sys::mount_basics();
    sys::ensure_console();
    let t_mod = os::now_ms();
    // Only the drivers the hardware needs (bb-modules.alias), else every listed module.
    let (loaded, failed) =
        modalias::load_for_hardware().unwrap_or_else(|| sys::load_modules(sys::MODULES_ORDER));
    if loaded + failed > 0 {
        let t = os::now_ms();
        Line::new()
            .s("init: ")
            .u(loaded as u64)
            .s(" modules loaded, ")
            .u(failed as u64)
            .s(" skipped in ")
            .u(t - t_mod)
            .s(" ms (uptime ")
            .u(t / 1000)
            .s(".")
            .u(t % 1000 / 100)
            .s(" s)")
            .emit();
    }

    let mut buf = [0u8; 4096];
    let n = os::read_file(b"/proc/cmdline", &mut buf).map_err(|_| InitError::NoCmdline)?;
    let c = cmdline::parse_cmdline(&buf[..n]).map_err(InitError::Cmdline)?;
    cfg.apply(&c);
    let timeout_ms = cfg.timeout as u64 * 1000;

    setup_network(cfg, timeout_ms)?;

    wait_for_target(cfg, timeout_ms)?;
    let mut l = Line::new();
    l.s("init: ")
        .b(cfg.iface_name())
        .s(" ")
        .ip(cfg.addr)
        .s(" server ")
        .ip(cfg.server)
        .s(" target ")
        .b(cfg.dev_path());
    if let Some(g) = cfg.group {
        l.s(" group ").ip(g);
    }
    let t = os::now_ms();
    l.s(" (uptime ")
        .u(t / 1000)
        .s(".")
        .u(t % 1000 / 100)
        .s(" s)");
    l.emit();
    Ok(())
}

/// Waits for the target: `auto` until a disk it may choose appeared (it chooses once the
/// image size is known, and names every disk if none or several fit); a list or a by-id
/// name until one entry resolves, which then becomes `cfg.dev`; a path until it exists.
fn wait_for_target(cfg: &mut InitConfig, timeout_ms: u64) -> Result<(), InitError> {
    let deadline = os::now_ms() + timeout_ms;
    let spec = cfg.dev;
    if disks::is_auto(spec.as_bytes()) {
        let mut said = false;
        while disks::scan(disks::SYS_BLOCK).internal().next().is_none() {
            if os::now_ms() >= deadline {
                return Ok(()); // the choice, once the size is known, says there is none
            }
            if !said {
                Line::new()
                    .s("init: bb.dev=auto: waiting for a disk")
                    .emit();
                said = true;
            }
            syscalls::sleep_ms(50);
        }
        // Disks behind different drivers appear a moment apart: let the others show up.
        syscalls::sleep_ms(AUTO_SETTLE_MS);
        return Ok(());
    }
    if disks::is_rule(spec.as_bytes()) {
        let mut said = false;
        loop {
            if let Some(dev) = disks::resolve_list(disks::SYS_BLOCK, spec.as_bytes()) {
                Line::new()
                    .s("init: bb.dev=")
                    .b(spec.as_bytes())
                    .s(": ")
                    .b(dev.as_bytes())
                    .emit();
                cfg.dev = dev;
                return Ok(());
            }
            if os::now_ms() >= deadline {
                return Err(InitError::NoDevice);
            }
            if !said {
                Line::new()
                    .s("init: waiting for one of ")
                    .b(spec.as_bytes())
                    .emit();
                said = true;
            }
            syscalls::sleep_ms(50);
        }
    }
    if !sys::exists(cfg.dev_path()) {
        Line::new().s("init: waiting for ").b(cfg.dev_path()).emit();
        if !sys::wait_for_path(cfg.dev_path(), timeout_ms) {
            return Err(InitError::NoDevice);
        }
    }
    Ok(())
}

/// How long `bb.dev=auto` waits after the first disk appeared for the others.
const AUTO_SETTLE_MS: u64 = 500;

/// Network part of [`prepare`]: lo up, find the NIC, address it (ip= or DHCP), routes.
/// Exposed for a `--netconf` mode.
pub fn setup_network(cfg: &mut InitConfig, timeout_ms: u64) -> Result<(), InitError> {
    let ctl =
        net::Ctl::open().map_err(|_| InitError::NetConfig("cannot open an AF_INET socket"))?;
    let _ = ctl.up(b"lo");

    // Wait for the NIC: the named one, or the first that is not lo.
    let deadline = os::now_ms() + timeout_ms;
    let mut name = [0u8; 16];
    loop {
        if !cfg.ip.device.is_empty() {
            let mut p = [0u8; 48];
            let pre = b"/sys/class/net/";
            let d = cfg.ip.device.as_bytes();
            p[..pre.len()].copy_from_slice(pre);
            p[pre.len()..pre.len() + d.len()].copy_from_slice(d);
            if sys::exists(&p[..pre.len() + d.len()]) {
                name[..d.len()].copy_from_slice(d);
                break;
            }
        } else if sys::first_nic(&mut name) {
            break;
        }
        if os::now_ms() >= deadline {
            return Err(InitError::NoNic);
        }
        syscalls::sleep_ms(50);
    }
    let nlen = name.iter().position(|&c| c == 0).unwrap_or(16);
    cfg.iface = FixedStr::from_bytes(&name[..nlen]).unwrap_or(FixedStr::new());
    let ifc = cfg.iface.as_bytes_with_nul();

    if cfg.ip.mode == IpMode::Off {
        Line::new()
            .s("init: ip=off: using ")
            .b(cfg.iface_name())
            .s(" as configured")
            .emit();
        return Ok(());
    }
    ctl.up(ifc)
        .map_err(|_| InitError::NetConfig("cannot bring the network interface up"))?;
    // Wait for the link (real NICs need a few seconds of autonegotiation).
    let left = deadline.saturating_sub(os::now_ms()).max(1000);
    if !net::wait_carrier(ifc, left.min(20_000)) {
        Line::new()
            .s("init: ")
            .b(cfg.iface_name())
            .s(": no link (cable?), trying anyway")
            .emit();
    }

    let (addr, mask, gw) = match cfg.ip.mode {
        IpMode::Static => (cfg.ip.client, cfg.ip.netmask, cfg.ip.gateway),
        _ => {
            let mac = ctl
                .hwaddr(ifc)
                .map_err(|_| InitError::NetConfig("cannot read the interface's MAC address"))?;
            Line::new().s("init: DHCP on ").b(cfg.iface_name()).emit();
            let left = deadline.saturating_sub(os::now_ms()).max(10_000);
            let l = dhcp::obtain(ifc, mac, left).map_err(InitError::Dhcp)?;
            let mask = l
                .netmask
                .filter(|m| cmdline::mask_is_valid(*m))
                .unwrap_or(cmdline::classful_mask(l.yiaddr));
            (l.yiaddr, mask, l.router.filter(|r| *r != [0; 4]))
        }
    };
    ctl.set_ipv4(ifc, addr, mask)
        .map_err(|_| InitError::NetConfig("cannot set the interface address (SIOCSIFADDR)"))?;
    if let Some(g) = gw
        && let Err(e) = ctl.add_route(ifc, [0; 4], [0; 4], Some(g))
    {
        Line::new()
            .s("init: default route via ")
            .ip(g)
            .s(" failed")
            .errno(e)
            .emit();
    }
    if let Err(e) = ctl.add_route(ifc, [224, 0, 0, 0], [240, 0, 0, 0], None) {
        Line::new()
            .s("init: multicast route failed")
            .errno(e)
            .emit();
    }
    cfg.addr = addr;
    cfg.netmask = mask;
    cfg.gateway = gw;
    Ok(())
}

/// Ends imaging: prints `bb: OK <line>` or `bb: FAILED <line>` on the console, syncs, then:
/// - success: `bb.done=poweroff` powers off, `reboot` reboots, `halt` halts, `shell` runs
///   /bin/sh (halts if there is none);
/// - failure: never reboots or powers off; runs /bin/sh when `bb.done=shell` and it exists,
///   else halts (the machine stays on, the reason on the console).
///
/// Run from a distribution's initramfs hook (not PID 1), the `shell` cases exit instead
/// (status 0 after success, 1 after failure) so the hook script starts its own shell; every
/// other case acts on the machine directly, exactly as /init does.
pub fn finish(action: DoneAction, ok: bool, line: &[u8]) -> ! {
    let mut l = Line::new();
    if ok {
        l.s("OK ");
    } else {
        l.s("FAILED ");
    }
    l.b(line);
    l.emit();
    syscalls::sync();
    let pid1 = sys::is_pid1();
    let code = if ok { 0 } else { 1 };
    if action == DoneAction::Shell {
        if !pid1 {
            os::exit_now(code);
        }
        if !ok {
            Line::new()
                .s("the disk was not verified: do not boot it")
                .emit();
        }
        run_shell(); // returns only if there is no shell
    }
    let how = match (ok, action) {
        (true, DoneAction::Poweroff) => libc::RB_POWER_OFF,
        (true, DoneAction::Reboot) => libc::RB_AUTOBOOT,
        (true, _) => libc::RB_HALT_SYSTEM,
        (false, _) => {
            Line::new()
                .s("not rebooting: the disk was not verified. Halting; power off by hand.")
                .emit();
            libc::RB_HALT_SYSTEM
        }
    };
    if ok {
        Line::new()
            .s(if how == libc::RB_HALT_SYSTEM {
                "halt"
            } else {
                action.name()
            })
            .emit();
    }
    let e = syscalls::reboot(how);
    // reboot(2) failed (not root?): never exit as PID 1 (that panics the kernel, and panic=-1
    // would reboot into the disk).
    Line::new()
        .s("reboot(2) failed")
        .errno(e)
        .s("; stopping here")
        .emit();
    if !pid1 {
        os::exit_now(code);
    }
    loop {
        syscalls::sleep_ms(3_600_000);
    }
}

fn run_shell() {
    let sh = c"/bin/sh";
    if !syscalls::exists(sh) {
        Line::new().s("no /bin/sh in this initramfs").emit();
        return;
    }
    Line::new().s("starting /bin/sh").emit();
    let _ = syscalls::execve(
        sh,
        &[sh],
        &[c"PATH=/sbin:/bin:/usr/sbin:/usr/bin", c"TERM=linux"],
    );
    Line::new().s("exec /bin/sh failed").emit();
}
