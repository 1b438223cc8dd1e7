//! `[backup]`: when the controller backs its database up by itself, where to, and how many
//! backups it keeps (the newest of each of the last days, weeks and months).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[backup]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    cron: String,
    #[serde(default = "default_dir")]
    dir: PathBuf,
    #[serde(default = "default_daily")]
    keep_daily: u32,
    #[serde(default = "default_weekly")]
    keep_weekly: u32,
    #[serde(default = "default_monthly")]
    keep_monthly: u32,
}

fn default_dir() -> PathBuf {
    "backups".into()
}
fn default_daily() -> u32 {
    7
}
fn default_weekly() -> u32 {
    4
}
fn default_monthly() -> u32 {
    12
}

/// The scheduled backups, checked.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// When, in the controller's local time.
    pub cron: croner::Cron,
    /// Where backups go; a relative path is inside the data directory.
    pub dir: PathBuf,
    /// How many of the newest days, ISO weeks and months keep their newest backup.
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl BackupSettings {
    /// The directory, resolved against the data directory.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.dir)
    }
}

/// Checks `[backup]`: `Err((key, message))`.
pub(super) fn check(raw: RawBackup) -> Result<BackupSettings, (String, String)> {
    let cron = raw.cron.parse::<croner::Cron>().map_err(|e| {
        (
            "backup.cron".to_string(),
            format!(
                "'{}' is not a cron expression: {e} (e.g. \"30 2 * * *\": 02:30 every night)",
                raw.cron
            ),
        )
    })?;
    if raw.dir.as_os_str().is_empty() {
        return Err(("backup.dir".into(), "names no directory".into()));
    }
    for (key, n) in [
        ("backup.keep_daily", raw.keep_daily),
        ("backup.keep_weekly", raw.keep_weekly),
        ("backup.keep_monthly", raw.keep_monthly),
    ] {
        if n > 10_000 {
            return Err((key.into(), "is 0 to 10000".into()));
        }
    }
    if raw.keep_daily + raw.keep_weekly + raw.keep_monthly == 0 {
        return Err((
            "backup.keep_daily".into(),
            "keep_daily, keep_weekly and keep_monthly are all 0: no backup would be kept".into(),
        ));
    }
    Ok(BackupSettings {
        cron,
        dir: raw.dir,
        keep_daily: raw.keep_daily,
        keep_weekly: raw.keep_weekly,
        keep_monthly: raw.keep_monthly,
    })
}
