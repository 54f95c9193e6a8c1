//! bb-pxe: one command that serves a room of PXE machines — dnsmasq (proxy or full DHCP +
//! TFTP) and bb-server on one interface, supervised as one process group.

mod cli;
mod host;
mod tftp;

use bb_proto::wire::auth::PresharedKey;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli::{Dhcp, Options};

const EXIT_USAGE: i32 = 2;
const EXIT_SETUP: i32 = 5;
const EXIT_DNSMASQ: i32 = 6;
/// How long the children get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::parse(&args) {
        Ok(cli::Command::Help) => {
            print!("{}", cli::HELP);
            0
        }
        Ok(cli::Command::Version) => {
            println!("bb-pxe {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(cli::Command::Run(o)) => run(&o),
        Err(e) => {
            eprintln!("bb-pxe: {e}\nTry 'bb-pxe --help'.");
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}

/// The signal that asked us to stop (0: none yet).
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
}

fn install_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Everything that must hold before a child starts.
struct Plan {
    addr: host::IfAddr,
    netboot: PathBuf,
    loaders: Vec<PathBuf>,
    dnsmasq: PathBuf,
    bb_server: PathBuf,
    state: PathBuf,
    root: PathBuf,
}

fn setup_error(e: String) -> i32 {
    eprintln!("bb-pxe: {e}");
    EXIT_SETUP
}

/// The key for bb.key=: the key file read as bb-server and bb-client read it (64 hex digits
/// or exactly 32 raw bytes), written as 64 hex digits for the kernel command line.
fn read_key(path: &Path) -> Result<String, String> {
    let raw = std::fs::read(path).map_err(|e| format!("--key-file {}: {e}", path.display()))?;
    let key = PresharedKey::parse(&raw).map_err(|e| {
        format!(
            "--key-file {}: {e} (bb-server --gen-key FILE writes one)",
            path.display()
        )
    })?;
    let mut hex = [0u8; 64];
    key.to_hex(&mut hex);
    Ok(String::from_utf8_lossy(&hex).into_owned())
}

fn run(o: &Options) -> i32 {
    let plan = match plan(o) {
        Ok(p) => p,
        Err(e) => return setup_error(e),
    };
    let key = match o.key_file.as_deref().map(read_key).transpose() {
        Ok(k) => k,
        Err(e) => return setup_error(e),
    };
    let params = tftp::BootParams {
        server: plan.addr.addr,
        dev: o.dev.clone(),
        done: o.done,
        group: o.group,
        key,
        append: o.append.clone(),
    };
    match tftp::prepare_root(
        &plan.root,
        &plan.netboot,
        &plan.loaders,
        &tftp::boot_script(&params),
    ) {
        Ok(copied) => eprintln!(
            "bb-pxe: TFTP root {} ({} from {}{})",
            plan.root.display(),
            if copied.is_empty() {
                "reused".to_string()
            } else {
                format!("copied {}", copied.join(", "))
            },
            plan.netboot.display(),
            if o.key_file.is_some() {
                "; it holds the key: keep the imaging network closed"
            } else {
                ""
            }
        ),
        Err(e) => {
            return setup_error(format!(
                "cannot prepare the TFTP root {}: {e}",
                plan.root.display()
            ));
        }
    }
    install_signals();
    supervise(o, &plan)
}

/// Checks the interface, ports and programs, and decides the state directory.
/// Files and programs first (an installed bb-pxe that names a missing interface has found
/// them), then the interface, the image and the ports.
fn plan(o: &Options) -> Result<Plan, String> {
    let dnsmasq = host::find_dnsmasq(o.dnsmasq.as_deref())?;
    let bb_server = host::find_bb_server(o.bb_server.as_deref())?;
    let netboot = host::find_netboot(o.netboot.as_deref())?;
    let loaders = host::ipxe_loaders(&o.ipxe)?;
    let addr = host::interface_address(&o.interface)?;
    if o.image != "-" && !Path::new(&o.image).exists() {
        return Err(format!("IMAGE {}: no such file or device", o.image));
    }
    host::check_ports(o.dhcp == Dhcp::Proxy)?;
    let state = o
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from("/run/bb-pxe").join(&o.interface));
    std::fs::create_dir_all(&state)
        .map_err(|e| format!("cannot create the state directory {}: {e}", state.display()))?;
    let root = state.join("tftp");
    Ok(Plan {
        addr,
        netboot,
        loaders,
        dnsmasq,
        bb_server,
        state,
        root,
    })
}

fn dnsmasq_args(o: &Options, plan: &Plan) -> Vec<String> {
    let s = |p: &Path| p.display().to_string();
    let mut a: Vec<String> = vec![
        "--keep-in-foreground".into(),
        "--port=0".into(),
        format!("--interface={}", o.interface),
        "--bind-interfaces".into(),
        "--log-dhcp".into(),
        format!("--log-facility={}", s(&plan.state.join("dnsmasq.log"))),
        format!("--dhcp-leasefile={}", s(&plan.state.join("dnsmasq.leases"))),
        format!("--pid-file={}", s(&plan.state.join("dnsmasq.pid"))),
        // Root keeps the log, leases and TFTP root it was given readable and writable.
        "--user=root".into(),
        "--group=root".into(),
        "--enable-tftp".into(),
        format!("--tftp-root={}", s(&plan.root)),
        "--dhcp-match=set:ipxe,175".into(),
        "--dhcp-match=set:efi64,option:client-arch,7".into(),
        "--dhcp-match=set:efi64,option:client-arch,9".into(),
        // A URL, not a name: in proxy mode the network's DHCP server sets next-server (often
        // to itself), and iPXE would ask it for the script.
        format!("--dhcp-boot=tag:ipxe,tftp://{}/boot.ipxe", plan.addr.addr),
    ];
    match &o.dhcp {
        Dhcp::Proxy => {
            a.push(format!("--dhcp-range={},proxy", plan.addr.network()));
            // PXE firmware, iPXE included, takes a proxy offer's boot file only from its
            // boot menu (pxe-service; ".0" is appended to a name without a dot): firmware
            // gets iPXE, iPXE gets the script.
            for (tag, bios, efi) in [
                ("!ipxe", "undionly", "ipxe.efi"),
                ("ipxe", "boot.ipxe", "boot.ipxe"),
            ] {
                a.push(format!("--pxe-service=tag:{tag},x86PC,broadband,{bios}"));
                a.push(format!(
                    "--pxe-service=tag:{tag},X86-64_EFI,broadband,{efi}"
                ));
                a.push(format!("--pxe-service=tag:{tag},BC_EFI,broadband,{efi}"));
            }
        }
        Dhcp::Range(r) => {
            a.push(format!("--dhcp-range={r}"));
            a.push("--no-ping".into());
            a.push("--dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi".into());
            a.push("--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe".into());
        }
    }
    a
}

fn server_args(o: &Options, plan: &Plan) -> Vec<String> {
    let mut a: Vec<String> = vec!["-i".into(), o.interface.clone()];
    if let Some(n) = o.clients {
        a.extend(["--clients".into(), n.to_string()]);
    }
    if let Some(r) = &o.rate {
        a.extend(["--rate".into(), r.clone()]);
    }
    if let Some(k) = &o.key_file {
        a.extend(["--key-file".into(), k.display().to_string()]);
    }
    a.extend(o.server_opts.iter().cloned());
    let address = o.group.unwrap_or_else(|| plan.addr.broadcast());
    a.extend([address.to_string(), o.image.clone()]);
    a
}

/// A child in process group `pgid` (0: a new group led by the child) that gets SIGTERM when
/// bb-pxe dies, so nothing outlives it.
fn spawn(
    prog: &Path,
    args: &[String],
    pgid: i32,
    stdin: Stdio,
    stderr: Stdio,
) -> std::io::Result<Child> {
    let mut c = Command::new(prog);
    c.args(args).process_group(pgid).stdin(stdin).stderr(stderr);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl, getppid and _exit are async-signal-safe; the closure allocates nothing.
    unsafe {
        c.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // bb-pxe died between the fork and the prctl: the signal will never come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    c.spawn()
}

fn signal_group(pgid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own children's process group.
    unsafe { libc::kill(-pgid, sig) };
}

/// Ends the process group: SIGTERM, then SIGKILL after STOP_GRACE; reaps both children.
fn stop_all(pgid: i32, children: &mut [&mut Child]) -> Vec<Option<ExitStatus>> {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    let mut out = vec![None; children.len()];
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if out[i].is_none() {
                out[i] = c.try_wait().ok().flatten();
            }
        }
        if out.iter().all(Option::is_some) {
            return out;
        }
        if Instant::now() >= deadline {
            signal_group(pgid, libc::SIGKILL);
            for (i, c) in children.iter_mut().enumerate() {
                if out[i].is_none() {
                    out[i] = c.wait().ok();
                }
            }
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn exit_code(s: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

fn supervise(o: &Options, plan: &Plan) -> i32 {
    let log = plan.state.join("dnsmasq.log");
    let _ = std::fs::remove_file(&log);
    // dnsmasq's own stderr (startup errors; the rest goes to its log) into a file: a pipe
    // nobody reads could fill up and stall it.
    let err_path = plan.state.join("dnsmasq.stderr");
    let err_file = match std::fs::File::create(&err_path) {
        Ok(f) => f,
        Err(e) => return setup_error(format!("cannot create {}: {e}", err_path.display())),
    };
    let mut dnsmasq = match spawn(
        &plan.dnsmasq,
        &dnsmasq_args(o, plan),
        0,
        Stdio::null(),
        Stdio::from(err_file),
    ) {
        Ok(c) => c,
        Err(e) => {
            return setup_error(format!("cannot start {}: {e}", plan.dnsmasq.display()));
        }
    };
    let pgid = dnsmasq.id() as i32;
    // dnsmasq refuses a bad configuration or a taken port within moments.
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(Some(st)) = dnsmasq.try_wait() {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        return setup_error(format!(
            "dnsmasq exited at once ({st}): {} (its log: {})",
            if err.trim().is_empty() {
                "no message"
            } else {
                err.trim()
            },
            log.display()
        ));
    }
    let mode = match &o.dhcp {
        Dhcp::Proxy => "proxy DHCP".to_string(),
        Dhcp::Range(r) => format!("DHCP {r}"),
    };
    eprintln!(
        "bb-pxe: {} {}/{}: dnsmasq ({mode}, TFTP; log {}), bb.dev={} bb.done={}",
        o.interface,
        plan.addr.addr,
        u32::from(plan.addr.netmask).leading_ones(),
        log.display(),
        o.dev,
        o.done.name()
    );
    let sargs = server_args(o, plan);
    eprintln!("bb-pxe: {} {}", plan.bb_server.display(), sargs.join(" "));
    let mut server = match spawn(
        &plan.bb_server,
        &sargs,
        pgid,
        Stdio::inherit(), // IMAGE '-': the image comes on bb-pxe's standard input
        Stdio::piped(),
    ) {
        Ok(c) => c,
        Err(e) => {
            stop_all(pgid, &mut [&mut dnsmasq]);
            return setup_error(format!("cannot start {}: {e}", plan.bb_server.display()));
        }
    };
    // bb-server's progress and events are the display; verified machines come back here.
    let (tx, rx) = mpsc::channel::<Ipv4Addr>();
    let server_err = server.stderr.take().expect("stderr is piped");
    let forwarder = std::thread::spawn(move || {
        let mut r = BufReader::new(server_err);
        let mut line = Vec::new();
        let err = std::io::stderr();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let _ = err.lock().write_all(&line);
            if let Some(ip) = tftp::verified_client(&String::from_utf8_lossy(&line)) {
                let _ = tx.send(ip);
            }
        }
    });

    let leases = plan.state.join("dnsmasq.leases");
    let mut dnsmasq_died = None;
    let server_status = loop {
        while let Ok(ip) = rx.try_recv() {
            leave_loop(plan, o, ip, &leases);
        }
        if let Ok(Some(st)) = server.try_wait() {
            break Some(st);
        }
        if let Ok(Some(st)) = dnsmasq.try_wait() {
            dnsmasq_died = Some(st);
            break None;
        }
        let sig = STOP_SIGNAL.load(Ordering::SeqCst);
        if sig != 0 {
            eprintln!("bb-pxe: signal {sig}: stopping bb-server and dnsmasq");
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let statuses = stop_all(pgid, &mut [&mut server, &mut dnsmasq]);
    let _ = forwarder.join();
    while let Ok(ip) = rx.try_recv() {
        leave_loop(plan, o, ip, &leases);
    }
    if let Some(st) = dnsmasq_died {
        eprintln!(
            "bb-pxe: dnsmasq exited during the session ({st}); bb-server stopped. See {}",
            log.display()
        );
        return EXIT_DNSMASQ;
    }
    let st = server_status.or(statuses[0]);
    let code = st.map(exit_code).unwrap_or(EXIT_SETUP);
    eprintln!("bb-pxe: bb-server exited with {code}; dnsmasq stopped");
    code
}

/// A machine verified: serve it a per-MAC script that boots its disk from now on.
fn leave_loop(plan: &Plan, o: &Options, ip: Ipv4Addr, leases: &Path) {
    let Some(mac) = tftp::mac_of(ip, &o.interface, leases) else {
        eprintln!(
            "bb-pxe: {ip} verified, but its MAC address is neither in the neighbour table nor \
             in the leases: if it boots from the network again it is imaged again"
        );
        return;
    };
    let name = tftp::mac_script_name(&mac);
    match tftp::write_atomic(
        &plan.root,
        &name,
        tftp::local_boot_script(&mac, ip).as_bytes(),
    ) {
        Ok(()) => {
            eprintln!("bb-pxe: {ip} ({mac}) verified: from now on it boots from its disk ({name})")
        }
        Err(e) => eprintln!("bb-pxe: {ip} ({mac}) verified, but {name} could not be written: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_goes_to_the_machines_as_64_hex_digits_whether_hex_or_raw() {
        let dir = std::env::temp_dir().join(format!("bb-pxe-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let raw: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let (raw_file, hex_file, bad_file) = (
            dir.join("raw.key"),
            dir.join("hex.key"),
            dir.join("bad.key"),
        );
        std::fs::write(&raw_file, &raw).unwrap();
        std::fs::write(&hex_file, format!("{}\n", hex.to_uppercase())).unwrap();
        std::fs::write(&bad_file, "secret\n").unwrap();
        assert_eq!(read_key(&raw_file).unwrap(), hex);
        assert_eq!(read_key(&hex_file).unwrap(), hex);
        let e = read_key(&bad_file).unwrap_err();
        assert!(e.contains("bad.key") && e.contains("64 hex digits"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
