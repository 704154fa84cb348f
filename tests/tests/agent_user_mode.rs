//! `bluechi-agent --user` (and `-u`): the agent manages the user's systemd instance on the
//! session bus and serves `org.eclipse.bluechi.Agent` there, never touching the system bus
//! (spec §1.2). Local processes: the controller on a private "system" bus, the emulator as a
//! user manager (`systemd-emulator --user`, units from `$HOME/.config/systemd/user`) and the
//! agent on a private session bus; the agent's system bus address points nowhere.
//! Run `cargo build --workspace --bins` first (or set BLUECHI_BIN_DIR).

mod support_daemons;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use scenario_runner::{dbus, paths};
use support_daemons::Daemons;
use zbus::Connection;

const NODE: &str = "laptop";
const UNIT: &str = "hello.service";
const AGENT_NAME: &str = "org.eclipse.bluechi.Agent";
const DEADLINE: Duration = Duration::from_secs(20);
/// Where no bus listens: any use of the system bus by the user-mode agent fails.
const NO_SYSTEM_BUS: &str = "unix:path=/nonexistent/bluechi-test/system_bus_socket";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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

async fn poll<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    logs: impl Fn() -> String,
    mut probe: impl FnMut() -> Fut,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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
    let port = free_port();
    let controller_conf = sys_dir.join("controller.conf");
    write(
        &controller_conf,
        &format!(
            "[bluechi-controller]\nControllerPort={port}\nUseUDS=false\nAllowedNodeNames={NODE}\n\
             LogTarget=stderr\nLogLevel=DEBUG\n"
        ),
    );
    let agent_conf = session_dir.join("agent.conf");
    write(
        &agent_conf,
        &format!(
            "[bluechi-agent]\nNodeName={NODE}\nControllerHost=127.0.0.1\nControllerPort={port}\n\
             LogTarget=stderr\nLogLevel=DEBUG\n"
        ),
    );

    let mut system = Daemons::start_bus(&sys_dir);
    let mut session = Daemons::start_bus(&session_dir);
    let logs = |s: &Daemons, u: &Daemons| format!("{}{}", s.logs(), u.logs());
    let mut controller = system.command(bin.join("bluechi-controller"));
    controller.arg("-c").arg(&controller_conf);
    system.spawn("bluechi-controller", controller);
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
    system
        .wait_for_name(
            &sys_bus,
            "org.eclipse.bluechi",
            "bluechi-controller",
            DEADLINE,
        )
        .await;
    let mut agent = session_command(&session, &bin.join("bluechi-agent"), &home, &run);
    agent.arg(flag).arg("-c").arg(&agent_conf);
    session.spawn("bluechi-agent", agent);

    // The agent owns its name on the session bus and registers with the controller.
    session
        .wait_for_name(&user_bus, AGENT_NAME, "bluechi-agent", DEADLINE)
        .await;
    let what = format!("{NODE} online at the controller and in the agent's Status");
    poll(
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
