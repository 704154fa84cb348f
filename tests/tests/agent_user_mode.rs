//! `bluechi-agent --user` (and `-u`): the agent manages the user's systemd instance on the
//! session bus and serves `org.eclipse.bluechi.Agent` there, never touching the system bus
//! (spec §1.2). Local processes: the controller on a private "system" bus, the emulator as a
//! user manager (`systemd-emulator --user`, units from `$HOME/.config/systemd/user`) and the
//! agent on a private session bus; the agent's system bus address points nowhere.
//! Run `cargo build --workspace --bins` first (or set BLUECHI_BIN_DIR).

mod robust_support;
mod support_daemons;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use robust_support::{poll_with, GroupChild, DEADLINE};
use scenario_runner::{dbus, paths};
use support_daemons::{is_alive, Daemons};
use zbus::Connection;

const NODE: &str = "laptop";
const UNIT: &str = "hello.service";
const AGENT_NAME: &str = "org.eclipse.bluechi.Agent";
const CONTROLLER_NAME: &str = "org.eclipse.bluechi";
/// Where no bus listens: any use of the system bus by the user-mode agent fails.
const NO_SYSTEM_BUS: &str = "unix:path=/nonexistent/bluechi-test/system_bus_socket";
/// Where no session bus listens either.
const NO_SESSION_BUS: &str = "unix:path=/nonexistent/bluechi-test/session_bus_socket";
/// Ports found free that someone else took before the controller bound them, at most.
const PORT_ATTEMPTS: usize = 5;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the controller on `system`'s bus and returns it with its port. A port found free
/// may be taken before the controller binds it (other tests run in parallel), so a start
/// that failed with "address in use" is retried on another port. The config goes to `dir`,
/// the log next to `system`'s daemons' (`bluechi-controller.log`).
async fn start_controller(
    system: &Daemons,
    sys_bus: &Connection,
    bin: &Path,
    dir: &Path,
) -> (GroupChild, u16) {
    let conf = dir.join("controller.conf");
    let log_path = system.log_path("bluechi-controller");
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port();
        write(
            &conf,
            &format!(
                "[bluechi-controller]\nControllerPort={port}\nUseUDS=false\n\
                 AllowedNodeNames={NODE}\nLogTarget=stderr\nLogLevel=DEBUG\n"
            ),
        );
        let log = std::fs::File::create(&log_path).expect("controller log");
        let mut cmd = system.command(bin.join("bluechi-controller"));
        cmd.arg("-c")
            .arg(&conf)
            .stdout(log.try_clone().expect("controller log"))
            .stderr(log)
            .process_group(0);
        let child = GroupChild(cmd.spawn().expect("bluechi-controller"));
        let pid = child.0.id() as i32;
        let log = || system.log("bluechi-controller");
        let up = poll_with("the controller to own its name or exit", log, || async {
            if dbus::name_has_owner(sys_bus, CONTROLLER_NAME)
                .await
                .unwrap_or(false)
            {
                return Some(true);
            }
            (!is_alive(pid)).then_some(false)
        })
        .await;
        if up {
            return (child, port);
        }
        assert!(
            log().contains("Address already in use"),
            "the controller exited:\n{}",
            log()
        );
    }
    panic!("no free port for the controller in {PORT_ATTEMPTS} attempts");
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("directory");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A command for the user session: its bus, its home and runtime directory, no system bus.
fn session_command(session: &Daemons, program: &Path, home: &Path, run: &Path) -> Command {
    let mut cmd = session.command(program);
    cmd.env("DBUS_SESSION_BUS_ADDRESS", session.bus_address())
        .env("DBUS_SYSTEM_BUS_ADDRESS", NO_SYSTEM_BUS)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", run)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME");
    cmd
}

async fn user_mode_agent_runs_the_users_units(flag: &str) {
    let bin = paths::bin_dir().expect("binary directory");
    let tmp = tempfile::tempdir().expect("temp dir");
    let (sys_dir, session_dir) = (tmp.path().join("system"), tmp.path().join("session"));
    let (home, run) = (tmp.path().join("home"), tmp.path().join("run"));
    for d in [&sys_dir, &session_dir, &home, &run] {
        std::fs::create_dir_all(d).expect("directory");
    }
    write(
        &home.join(".config/systemd/user").join(UNIT),
        "[Service]\nType=simple\nExecStart=/bin/sleep 60\n",
    );
    let system = Daemons::start_bus(&sys_dir);
    let mut session = Daemons::start_bus(&session_dir);
    // The controller is not one of `system`'s daemons (it may take several starts).
    let logs = |s: &Daemons, u: &Daemons| {
        let controller = s.log("bluechi-controller");
        format!(
            "{}--- bluechi-controller\n{controller}{}",
            s.logs(),
            u.logs()
        )
    };
    let mut emulator = session_command(&session, &bin.join("systemd-emulator"), &home, &run);
    emulator.arg("--user");
    session.spawn("systemd-emulator", emulator);
    let sys_bus = dbus::connect(system.bus_address())
        .await
        .expect("system bus");
    let user_bus = dbus::connect(session.bus_address())
        .await
        .expect("session bus");
    session
        .wait_for_name(
            &user_bus,
            "org.freedesktop.systemd1",
            "systemd-emulator",
            DEADLINE,
        )
        .await;
    let (_controller, port) = start_controller(&system, &sys_bus, &bin, &sys_dir).await;
    let agent_conf = session_dir.join("agent.conf");
    write(
        &agent_conf,
        &format!(
            "[bluechi-agent]\nNodeName={NODE}\nControllerHost=127.0.0.1\nControllerPort={port}\n\
             LogTarget=stderr\nLogLevel=DEBUG\n"
        ),
    );
    let mut agent = session_command(&session, &bin.join("bluechi-agent"), &home, &run);
    agent.arg(flag).arg("-c").arg(&agent_conf);
    session.spawn("bluechi-agent", agent);

    // The agent owns its name on the session bus and registers with the controller.
    session
        .wait_for_name(&user_bus, AGENT_NAME, "bluechi-agent", DEADLINE)
        .await;
    let what = format!("{NODE} online at the controller and in the agent's Status");
    poll_with(
        &what,
        || logs(&system, &session),
        || async {
            let nodes = dbus::list_nodes(&sys_bus).await.ok()?;
            let registered = nodes.iter().any(|(n, s)| n == NODE && s == "online");
            let status = agent_status(&user_bus).await.ok()?;
            (registered && status == "online").then_some(())
        },
    )
    .await;

    // A unit of the user's manager starts through the controller.
    let out = system
        .command(bin.join("bluechictl"))
        .args(["start", NODE, UNIT])
        .output()
        .expect("bluechictl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Unit {UNIT} StartUnit operation result: done\n"),
        "stderr: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs(&system, &session)
    );
    let active = dbus::unit_property(&user_bus, UNIT, "ActiveState").await;
    assert_eq!(
        active.as_deref(),
        Ok("active"),
        "{}",
        logs(&system, &session)
    );
    assert!(
        session.alive("bluechi-agent"),
        "{}",
        logs(&system, &session)
    );
}

async fn agent_status(conn: &Connection) -> Result<String, String> {
    let reply = conn
        .call_method(
            Some(AGENT_NAME),
            "/org/eclipse/bluechi",
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.eclipse.bluechi.Agent", "Status"),
        )
        .await
        .map_err(|e| e.to_string())?;
    let v: zvariant::OwnedValue = reply.body().deserialize().map_err(|e| e.to_string())?;
    String::try_from(v).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_with_long_user_option_manages_the_user_instance() {
    user_mode_agent_runs_the_users_units("--user").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_with_short_user_option_manages_the_user_instance() {
    user_mode_agent_runs_the_users_units("-u").await;
}

/// Without a session bus the user-mode agent cannot reach the user's manager: it says so in
/// one sentence and exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn user_mode_agent_without_a_session_bus_says_why_it_stops() {
    let bin = paths::bin_dir().expect("binary directory");
    let tmp = tempfile::tempdir().expect("temp dir");
    let conf = tmp.path().join("agent.conf");
    write(
        &conf,
        &format!(
            "[bluechi-agent]\nNodeName={NODE}\nControllerHost=127.0.0.1\nControllerPort=1\n\
             LogTarget=stderr\n"
        ),
    );
    let agent = tokio::process::Command::new(bin.join("bluechi-agent"))
        .arg("--user")
        .arg("-c")
        .arg(&conf)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .env("DBUS_SYSTEM_BUS_ADDRESS", NO_SYSTEM_BUS)
        .env("HOME", tmp.path())
        .env("XDG_RUNTIME_DIR", tmp.path())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, agent)
        .await
        .expect("the agent kept running without a session bus")
        .expect("run bluechi-agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // One error line: what failed and where, then the bus library's own reason.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let (_, message) = errors[0]
        .split_once("Failed to connect to systemd")
        .unwrap_or_else(|| panic!("no reason given: {stderr}"));
    assert!(
        message.starts_with(" on the user bus: ") && message.matches("user bus").count() == 1,
        "{stderr}"
    );
}
