//! A site's first config (`stackroom init`) and the example production config.

use crate::common::BIN;

use std::process::Command;

fn run(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_config_init_writes_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("etc").join("room.toml");
    let data = dir.path().join("data");
    let profiles = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles");
    let (ok, said) = run(&[
        "init".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--profiles-dir".as_ref(),
        profiles.as_os_str(),
        "--ranges".as_ref(),
        "2".as_ref(),
        "--carriages".as_ref(),
        "8".as_ref(),
        "--shelving".as_ref(),
        "framed-shelving@/dev/ttyUSB0".as_ref(),
        "--shelving".as_ref(),
        "generic-modbus-shelving@tcp:10.0.0.5:502".as_ref(),
        "--reader".as_ref(),
        "thingmagic-m6e-mux@/dev/ttyUSB2".as_ref(),
    ]);
    assert!(ok, "{said}");
    assert!(said.contains("MQTT passwords"), "{said}");
    let (ok, summary) = run(&["check-config".as_ref(), out.as_os_str()]);
    assert!(ok, "{summary}");
    assert!(summary.contains("2 range(s)"), "{summary}");
    assert!(summary.contains("thingmagic-m6e-mux"), "{summary}");
    assert!(summary.contains("backups: \"30 0 * * *\""), "{summary}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# The room config of stack-1"), "{text}");
    // Not written over.
    let (ok, said) = run(&["init".as_ref(), "--out".as_ref(), out.as_os_str()]);
    assert!(!ok && said.contains("--force"), "{said}");
}

#[test]
fn the_example_production_config_checks_but_for_the_passwords_a_site_makes() {
    let (ok, said) = run(&[
        "check-config".as_ref(),
        "config/site-room.example.toml".as_ref(),
    ]);
    assert!(said.contains("site 'gd-power', room 'stack-2'"), "{said}");
    assert!(
        said.contains("1584 antenna(s) covering 1584 of 1584 shelves"),
        "{said}"
    );
    // On a machine without its passwords: those, and nothing else, are missing.
    if !ok {
        let complaints: Vec<&str> = said
            .lines()
            .filter(|l| l.starts_with("error: ") || l.starts_with("the MQTT password"))
            .collect();
        assert!(!complaints.is_empty(), "{said}");
        assert!(
            complaints.iter().all(|l| l.contains("MQTT password")),
            "{said}"
        );
    }
}
