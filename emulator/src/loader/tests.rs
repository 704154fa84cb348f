use super::*;
use crate::engine::{Loaded, UnitSource};

const SVC: &str = "[Service]\nExecStart=/bin/sleep infinity\n";

fn def(src: &dyn UnitSource, name: &str) -> crate::unitfile::UnitDef {
    match src.load(name) {
        Loaded::Ok(d) => *d,
        other => panic!("{name}: {other:?}"),
    }
}

fn exec0(d: &crate::unitfile::UnitDef) -> Vec<String> {
    match &d.kind {
        crate::unitfile::UnitKind::Service(s) => {
            s.exec_start.iter().flat_map(|c| c.argv.clone()).collect()
        }
        _ => Vec::new(),
    }
}

fn root() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(target, p).expect("symlink");
}

#[test]
fn search_path_priority_and_dropins() {
    let r = root();
    let rp = r.path();
    write(
        rp,
        "usr/lib/systemd/system/a.service",
        "[Unit]\nDescription=vendor\n[Service]\nExecStart=/bin/false\n",
    );
    write(
        rp,
        "etc/systemd/system/a.service",
        "[Unit]\nDescription=admin\n[Service]\nExecStart=/bin/true\n",
    );
    write(
        rp,
        "usr/lib/systemd/system/a.service.d/10-x.conf",
        "[Unit]\nDescription=vendor-dropin\n",
    );
    write(
        rp,
        "etc/systemd/system/a.service.d/10-x.conf",
        "[Unit]\nDescription=etc-dropin\n",
    );
    write(
        rp,
        "run/systemd/system/a.service.d/20-y.conf",
        "[Service]\nExecStart=\nExecStart=/bin/echo hi\n",
    );
    write(
        rp,
        "etc/systemd/system/service.d/05-t.conf",
        "[Unit]\nWants=w.service\n",
    );
    let src = FsSource::with_root(rp);
    let d = def(&src, "a.service");
    let etc = rp.join("etc/systemd/system");
    assert_eq!(d.fragment_path, etc.join("a.service").display().to_string());
    assert_eq!(d.description, "etc-dropin");
    assert_eq!(exec0(&d), vec!["/bin/echo", "hi"]);
    assert_eq!(d.deps.wants, vec!["w.service"]);
    assert_eq!(
        d.drop_in_paths,
        vec![
            etc.join("service.d/05-t.conf").display().to_string(),
            etc.join("a.service.d/10-x.conf").display().to_string(),
            rp.join("run/systemd/system/a.service.d/20-y.conf")
                .display()
                .to_string(),
        ]
    );
    assert_eq!(src.file_state("a.service").as_deref(), Some("static"));
    assert_eq!(src.file_preset("a.service").as_deref(), Some("enabled"));
    assert_eq!(src.file_preset("nope.service"), None);
    write(
        rp,
        "usr/lib/systemd/system-preset/90-x.preset",
        "disable a.*\n",
    );
    src.reload();
    assert_eq!(src.file_preset("a.service").as_deref(), Some("disabled"));
}

#[test]
fn template_and_prefix_dropins_apply_to_instances() {
    let src = MapSource::default()
        .with("foo-bar@.service", "[Service]\nExecStart=/bin/echo %i %I\n")
        .with("foo-bar@.service.d/1.conf", "[Unit]\nDescription=tmpl %i\n")
        .with("foo-.service.d/2.conf", "[Unit]\nWants=p.service\n")
        .with("foo-bar@x.service.d/3.conf", "[Unit]\nAfter=q.service\n");
    let d = def(&src, "foo-bar@a\\x2db.service");
    assert_eq!(d.description, "tmpl a\\x2db");
    assert_eq!(exec0(&d), vec!["/bin/echo", "a-b", "a-b"]);
    assert_eq!(d.deps.wants, vec!["p.service"]);
    assert!(d.deps.after.is_empty());
    assert_eq!(def(&src, "foo-bar@x.service").deps.after, vec!["q.service"]);
}

#[test]
fn masks_symlink_and_empty_file() {
    let r = root();
    let rp = r.path();
    symlink(rp, "etc/systemd/system/b.service", "/dev/null");
    write(rp, "etc/systemd/system/c.service", "");
    symlink(rp, "run/systemd/system/d.service", "/dev/null");
    write(rp, "usr/lib/systemd/system/d.service", SVC);
    let src = FsSource::with_root(rp);
    for n in ["b.service", "c.service", "d.service"] {
        match src.load(n) {
            Loaded::Failed {
                load_state,
                error_name,
                message,
                ..
            } => {
                assert_eq!(load_state, "masked");
                assert_eq!(error_name, "org.freedesktop.systemd1.UnitMasked");
                assert_eq!(message, format!("Unit {n} is masked."));
            }
            other => panic!("{n}: {other:?}"),
        }
    }
    assert_eq!(src.file_state("b.service").as_deref(), Some("masked"));
    assert_eq!(
        src.file_state("d.service").as_deref(),
        Some("masked-runtime")
    );
    assert!(matches!(src.load("nope.service"), Loaded::NotFound));
    assert_eq!(src.file_state("nope.service"), None);
}

#[test]
fn aliases_and_wants_dirs() {
    let src = MapSource::default()
        .with("a.service", SVC)
        .with_link("al.service", "a.service")
        .with_link("zz.service", "a.service")
        .with("al.service.d/x.conf", "[Unit]\nDescription=via-alias\n")
        .with("t.target", "[Unit]\n")
        .with_link("t.target.wants/a.service", "a.service")
        .with_link("t.target.requires/r.service", "r.service")
        .with("r.service", SVC);
    let d = def(&src, "al.service");
    assert_eq!(d.name, "a.service");
    assert_eq!(d.names, vec!["a.service", "al.service", "zz.service"]);
    assert!(d.drop_in_paths.is_empty(), "{:?}", d.drop_in_paths);
    assert_eq!(
        def(&src, "a.service").names,
        vec!["a.service", "al.service", "zz.service"]
    );
    let t = def(&src, "t.target");
    assert_eq!(t.deps.wants, vec!["a.service"]);
    assert_eq!(t.deps.requires, vec!["r.service"]);
    assert_eq!(src.file_state("al.service").as_deref(), Some("alias"));
}

#[test]
fn enable_disable_follow_install() {
    let r = root();
    let rp = r.path();
    write(rp, "usr/lib/systemd/system/a.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=al.service\nAlso=b.service\n");
    write(
        rp,
        "usr/lib/systemd/system/b.service",
        "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=x.target\n",
    );
    write(rp, "usr/lib/systemd/system/s.service", SVC);
    write(
        rp,
        "usr/lib/systemd/system/t@.service",
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    );
    write(rp, "usr/lib/systemd/system/d@.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nDefaultInstance=def\n");
    write(rp, "usr/lib/systemd/system/x.target", "[Unit]\n");
    let src = FsSource::with_root(rp);
    let etc = rp.join("etc/systemd/system");
    let lib = rp.join("usr/lib/systemd/system");
    let s = |p: PathBuf| p.display().to_string();
    assert_eq!(src.file_state("a.service").as_deref(), Some("disabled"));
    let ch = src
        .enable(&["a.service".into()], false, false)
        .expect("enable");
    assert_eq!(
        ch,
        vec![
            (
                "symlink".into(),
                s(etc.join("al.service")),
                s(lib.join("a.service"))
            ),
            (
                "symlink".into(),
                s(etc.join("multi-user.target.wants/a.service")),
                s(lib.join("a.service"))
            ),
            (
                "symlink".into(),
                s(etc.join("x.target.requires/b.service")),
                s(lib.join("b.service"))
            ),
        ]
    );
    assert!(src
        .enable(&["a.service".into()], false, false)
        .expect("again")
        .is_empty());
    assert_eq!(src.file_state("a.service").as_deref(), Some("enabled"));
    assert_eq!(src.file_state("al.service").as_deref(), Some("alias"));
    src.reload();
    assert_eq!(def(&src, "x.target").deps.requires, vec!["b.service"]);
    let ch = src.disable(&["a.service".into()], false).expect("disable");
    assert_eq!(
        ch,
        vec![
            (
                "unlink".into(),
                s(etc.join("multi-user.target.wants/a.service")),
                String::new()
            ),
            (
                "unlink".into(),
                s(etc.join("x.target.requires/b.service")),
                String::new()
            ),
            ("unlink".into(), s(etc.join("al.service")), String::new()),
        ]
    );
    assert_eq!(src.file_state("a.service").as_deref(), Some("disabled"));
    // runtime enable goes to /run
    let ch = src
        .enable(&["b.service".into()], true, false)
        .expect("runtime");
    assert_eq!(
        ch[0].1,
        s(rp.join("run/systemd/system/x.target.requires/b.service"))
    );
    assert_eq!(
        src.file_state("b.service").as_deref(),
        Some("enabled-runtime")
    );
    // static, templates, errors
    assert!(src
        .enable(&["s.service".into()], false, false)
        .expect("static")
        .is_empty());
    assert_eq!(src.file_state("s.service").as_deref(), Some("static"));
    let e = src
        .enable(&["t@.service".into()], false, false)
        .unwrap_err();
    assert_eq!(e.name, "org.freedesktop.systemd1.BadUnitSetting");
    src.enable(&["t@y.service".into()], false, false)
        .expect("instance");
    assert_eq!(src.file_state("t@y.service").as_deref(), Some("enabled"));
    assert_eq!(src.file_state("t@z.service").as_deref(), Some("disabled"));
    assert_eq!(src.file_state("t@.service").as_deref(), Some("indirect"));
    let ch = src
        .enable(&["d@.service".into()], false, false)
        .expect("default instance");
    assert_eq!(
        ch[0].1,
        s(etc.join("multi-user.target.wants/d@def.service"))
    );
    assert_eq!(src.file_state("d@.service").as_deref(), Some("enabled"));
    let e = src.disable(&["nf.service".into()], false).unwrap_err();
    assert_eq!(
        (e.name, e.message.as_str()),
        (
            "org.freedesktop.systemd1.NoSuchUnit",
            "Unit file nf.service does not exist."
        )
    );
}

#[test]
fn default_target_symlink() {
    let src = MapSource::default()
        .with_abs("/usr/lib/systemd/system/graphical.target", "[Unit]\n")
        .with_abs("/usr/lib/systemd/system/multi-user.target", "[Unit]\n");
    assert!(src.default_target().is_err());
    let ch = src
        .set_default_target("multi-user.target", false)
        .expect("set");
    assert_eq!(
        ch,
        vec![(
            "symlink".into(),
            "/etc/systemd/system/default.target".into(),
            "/usr/lib/systemd/system/multi-user.target".into()
        )]
    );
    assert_eq!(src.default_target().expect("get"), "multi-user.target");
    src.set_default_target("graphical.target", false)
        .expect("set");
    assert_eq!(src.default_target().expect("get"), "graphical.target");
    assert_eq!(
        src.set_default_target("nf.target", false).unwrap_err().name,
        "org.freedesktop.systemd1.NoSuchUnit"
    );
}

#[test]
fn masked_unit_cannot_be_enabled() {
    let src = MapSource::default().with_link("b.service", "/dev/null");
    let e = src.enable(&["b.service".into()], false, false).unwrap_err();
    assert_eq!(e.name, "org.freedesktop.systemd1.UnitMasked");
    assert_eq!(
        e.message,
        "Unit file /etc/systemd/system/b.service is masked."
    );
}

#[test]
fn ten_thousand_units_load_fast() {
    let r = root();
    let dir = r.path().join("etc/systemd/system");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..10_000 {
        std::fs::write(dir.join(format!("u{i}.service")), SVC).expect("write");
    }
    let src = FsSource::with_root(r.path());
    let start = std::time::Instant::now();
    for i in 0..10_000 {
        assert!(matches!(src.load(&format!("u{i}.service")), Loaded::Ok(_)));
    }
    assert_eq!(src.list_files().len(), 10_000);
    // Generous for a shared debug build; re-reading directories per lookup takes minutes.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// `--unit-dir` mode: `enable` writes to the first given directory, `enable --runtime` to the
/// runtime directory (`system/`, `user/` for a user manager), never to a given one.
#[test]
fn explicit_dirs_enable_runtime_goes_to_the_runtime_dir() {
    let r = root();
    let rp = r.path();
    let install = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";
    write(rp, "units/a.service", install);
    write(rp, "units/b.service", install);
    let units = rp.join("units");
    let run = rp.join("run");
    let s = |p: PathBuf| p.display().to_string();
    for (user, sub) in [(false, "system"), (true, "user")] {
        let src = FsSource::with_dirs(std::slice::from_ref(&units), &run, user);
        assert_eq!(
            src.dirs(),
            vec![units.clone(), run.join(sub), run.join("transient")]
        );
        let ch = src
            .enable(&["a.service".into()], true, false)
            .expect("enable --runtime");
        let link = run.join(sub).join("multi-user.target.wants/a.service");
        assert_eq!(
            ch,
            vec![(
                "symlink".into(),
                s(link.clone()),
                s(units.join("a.service"))
            )]
        );
        assert_eq!(
            src.file_state("a.service").as_deref(),
            Some("enabled-runtime")
        );
        assert!(units
            .join("multi-user.target.wants/a.service")
            .symlink_metadata()
            .is_err());
        let ch = src
            .enable(&["b.service".into()], false, false)
            .expect("enable");
        assert_eq!(ch[0].1, s(units.join("multi-user.target.wants/b.service")));
        assert_eq!(src.file_state("b.service").as_deref(), Some("enabled"));
        // Runtime state goes with the runtime directory, as with /run on a reboot.
        src.disable(&["b.service".into()], false).expect("disable");
        std::fs::remove_dir_all(&run).expect("clear the runtime dir");
        src.reload();
        assert_eq!(src.file_state("a.service").as_deref(), Some("disabled"));
    }
    // Without a runtime directory in the search path `enable --runtime` has nowhere to write
    // to; it must not fall back to a persistent directory.
    let files = UnitFiles::new(
        vfs::MemFs::default(),
        PathBuf::from("/"),
        vec![SearchDir {
            path: PathBuf::from("/u"),
            scope: Scope::Config,
        }],
    );
    files.vfs.put_file(Path::new("/u/x.service"), install);
    let e = install::enable(&files, &["x.service".into()], true, false).unwrap_err();
    assert_eq!(e.message, "No runtime unit directory to write to.");
    assert_eq!(
        files.vfs.list(Path::new("/u")).len(),
        1,
        "only x.service in /u"
    );
}
