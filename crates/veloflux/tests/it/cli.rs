use std::process::Output;

use crate::harness::command;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_and_help_describe_the_commands() {
    let version = run(&["--version"], &[]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("veloflux {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run(&["--help"], &[]);
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["serve", "migrate", "admin", "config"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn bad_usage_exits_with_code_two() {
    let output = run(&["serve", "--no-such-flag"], &[]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn an_invalid_value_stops_serve_with_code_two_naming_the_key() {
    let output = run(&["serve"], &[("VELOFLUX_API_ADDR", "nonsense")]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("api.addr") && text.contains("nonsense") && text.contains("VELOFLUX_API_ADDR"),
        "{text}"
    );
}

#[test]
fn config_check_reports_the_same_error_without_starting() {
    let output = run(&["config", "check"], &[("VELOFLUX_API_ADDR", "nonsense")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("api.addr"), "{}", stderr(&output));

    let output = run(&["config", "check"], &[("VELOFLUX_HTTP__REQUEST_TIMEOUT", "later")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("http.request_timeout"), "{}", stderr(&output));

    let output = run(&["config", "check"], &[("VELOFLUX_NOT_A_KEY", "1")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not_a_key"), "{}", stderr(&output));
}

#[test]
fn config_check_validates_a_file_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("veloflux.toml");
    std::fs::write(
        &file,
        "data_dir = \"/var/lib/veloflux\"\n[api]\naddr = \"0.0.0.0:9090\"\n[database]\nurl = \"postgres://vf:hunter22@db:5432/vf\"\n",
    )
    .unwrap();
    let output = run(&["config", "check", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("configuration is valid"), "{text}");
    assert!(
        text.contains("0.0.0.0:9090") && text.contains("postgres://vf:***@db:5432/vf"),
        "{text}"
    );
    assert!(!text.contains("hunter22"));

    std::fs::write(&file, "[api]\nport = 9090\n").unwrap();
    let output = run(&["config", "check", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("port"), "{}", stderr(&output));

    let output = run(&["config", "check", "--config", "/no/such/veloflux.toml"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no such file"), "{}", stderr(&output));
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("veloflux.toml");
    std::fs::write(&file, "[api]\naddr = \"127.0.0.1:1111\"\n").unwrap();
    let output = run(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[("VELOFLUX_API__ADDR", "127.0.0.1:2222")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("127.0.0.1:2222"));
}

#[test]
fn migrate_and_admin_create_work_on_a_fresh_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let output = run(&["migrate", "--data-dir", data_arg], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        text.starts_with("applied ")
            && text.contains(" migration(s) to the sqlite database")
            && !text.starts_with("applied 0"),
        "{text}"
    );
    let output = run(&["migrate", "--data-dir", data_arg], &[]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("applied 0 migration(s)"));

    let create = [
        "admin",
        "create",
        "--email",
        "Root@Exemplo.com",
        "--password",
        "correct-horse-battery",
        "--data-dir",
        data_arg,
    ];
    let output = run(&create, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("created platform admin root@exemplo.com"));

    let output = run(&create, &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a second admin with the same e-mail is refused"
    );
    assert!(stderr(&output).contains("already exists"));

    let output = run(
        &[
            "admin",
            "create",
            "--email",
            "x@exemplo.com",
            "--password",
            "short",
            "--data-dir",
            data_arg,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--password"), "{}", stderr(&output));
}
