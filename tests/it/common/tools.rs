//! Tools some tests need from the system: Mosquitto, Chromium with ChromeDriver, Poppler,
//! pymodbus. A test whose tool is missing fails, unless `STACKROOM_OPTIONAL` names the tool
//! (`mosquitto`, `browser`, `poppler`, `pymodbus`, comma-separated, or `all`); then it says
//! that it skipped. `.ci/run` installs them all.

/// Call where `tool` is missing: fails the test unless the tool is marked optional, and
/// then says the test skipped.
pub fn missing(tool: &str, install: &str) {
    let optional = std::env::var("STACKROOM_OPTIONAL").unwrap_or_default();
    let marked = optional
        .split(',')
        .map(str::trim)
        .any(|t| t == tool || t == "all");
    assert!(
        marked,
        "{tool} is needed by this test and is missing ({install}); \
         .ci/run installs it, or STACKROOM_OPTIONAL={tool} makes the test skip"
    );
    eprintln!("SKIPPED (optional by STACKROOM_OPTIONAL): {tool} is missing ({install})");
}
