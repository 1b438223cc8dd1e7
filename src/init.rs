//! `stackroom init`: a site's first room config, from a few answers (or flags): the ranges
//! and their size, the shelving controller of each range, the readers and where each is
//! wired, the broker. It writes a commented config that `check-config` accepts, with the
//! antenna map worked out from the readers' port counts, nightly sweeps and backups, and
//! makes the MQTT passwords of the controller and its devices in the data directory.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::config::{DeviceKind, Profile};
use anyhow::{Context, anyhow, bail};

/// A device as given: `PROFILE@WHERE`, where is a serial device (`/dev/ttyUSB0`), a Modbus
/// TCP gateway (`tcp:10.0.0.5:502`) or an MQTT topic prefix (`mqtt:devices/shelving-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wired {
    pub profile: String,
    pub at: String,
}

impl std::str::FromStr for Wired {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (profile, at) = s.split_once('@').ok_or_else(|| {
            format!("'{s}': give PROFILE@PORT, e.g. r2000-mux@/dev/ttyUSB2, generic-modbus-shelving@tcp:10.0.0.5:502 or mqtt-json-shelving@mqtt:devices/shelving-1")
        })?;
        if profile.is_empty() || at.is_empty() {
            return Err(format!("'{s}': both the profile and where it is wired"));
        }
        Ok(Wired {
            profile: profile.into(),
            at: at.into(),
        })
    }
}

/// What the config describes.
#[derive(Debug, Clone)]
pub struct Answers {
    pub site_id: String,
    pub site_name: String,
    pub room_id: String,
    pub room_name: String,
    /// `zh` or `en`.
    pub language: String,
    pub ranges: u16,
    pub carriages: u16,
    pub sections: u16,
    pub levels: u16,
    /// Boxes a shelf holds.
    pub capacity: u16,
    /// One per range, in order.
    pub shelving: Vec<Wired>,
    /// Readers, as many as the shelves need (taken in order, range by range).
    pub readers: Vec<Wired>,
    /// The site broker (`mqtt://stackroom@host:1883`, `mqtts://…`) or `embedded`.
    pub broker: String,
    pub data_dir: PathBuf,
    pub profiles_dir: PathBuf,
    pub listen: String,
}

impl Answers {
    /// The defaults: a room of two ranges of ten carriages, a Modbus controller and an
    /// R2000 behind multiplexers each.
    pub fn defaults() -> Answers {
        Answers {
            site_id: "site".into(),
            site_name: "Archive".into(),
            room_id: "stack-1".into(),
            room_name: "Stack room 1".into(),
            language: "zh".into(),
            ranges: 2,
            carriages: 10,
            sections: 4,
            levels: 6,
            capacity: 12,
            shelving: Vec::new(),
            readers: Vec::new(),
            broker: "mqtt://stackroom@127.0.0.1:1883".into(),
            data_dir: "/var/lib/stackroom".into(),
            profiles_dir: "/usr/share/stackroom/device-profiles".into(),
            listen: "127.0.0.1:8080".into(),
        }
    }

    /// Gives every range without a shelving controller the default one.
    pub fn complete(&mut self) {
        while self.shelving.len() < usize::from(self.ranges) {
            let r = self.shelving.len() as u16 + 1;
            self.shelving.push(Answers::default_shelving(r));
        }
    }

    /// The default shelving controller of range `r` (from 1).
    fn default_shelving(r: u16) -> Wired {
        Wired {
            profile: "generic-modbus-shelving".into(),
            at: format!("/dev/ttyUSB{}", r - 1),
        }
    }

    /// The default `n`th reader (from 0).
    fn default_reader(&self, n: usize) -> Wired {
        Wired {
            profile: "r2000-mux".into(),
            at: format!("/dev/ttyUSB{}", self.ranges as usize + n),
        }
    }
}

/// Asks on `input` for every answer (showing the current one, kept on an empty line).
pub fn ask(
    answers: &mut Answers,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    fn one(
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        question: &str,
        current: &str,
    ) -> anyhow::Result<String> {
        write!(out, "{question} [{current}]: ")?;
        out.flush()?;
        let mut line = String::new();
        input.read_line(&mut line)?;
        let line = line.trim();
        Ok(if line.is_empty() {
            current.to_string()
        } else {
            line.to_string()
        })
    }
    fn number(
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        question: &str,
        current: u16,
    ) -> anyhow::Result<u16> {
        loop {
            let text = one(input, out, question, &current.to_string())?;
            match text.parse::<u16>() {
                Ok(n) if n >= 1 => return Ok(n),
                _ => writeln!(out, "  a whole number, 1 or more")?,
            }
        }
    }
    let a = answers;
    a.site_id = one(input, out, "Site id (letters, digits, - and _)", &a.site_id)?;
    a.site_name = one(input, out, "Site name", &a.site_name)?;
    a.room_id = one(input, out, "Room id", &a.room_id)?;
    a.room_name = one(input, out, "Room name", &a.room_name)?;
    a.language = one(
        input,
        out,
        "Language of shelf addresses (zh, en)",
        &a.language,
    )?;
    a.ranges = number(input, out, "Ranges (rows of mobile shelving)", a.ranges)?;
    a.carriages = number(input, out, "Carriages per range", a.carriages)?;
    a.sections = number(input, out, "Sections per carriage face", a.sections)?;
    a.levels = number(input, out, "Levels per section", a.levels)?;
    a.capacity = number(input, out, "Boxes per shelf", a.capacity)?;
    for r in 1..=a.ranges {
        let i = usize::from(r - 1);
        let current = a
            .shelving
            .get(i)
            .cloned()
            .unwrap_or_else(|| Answers::default_shelving(r));
        let text = one(
            input,
            out,
            &format!("Shelving controller of range {r} (PROFILE@PORT)"),
            &format!("{}@{}", current.profile, current.at),
        )?;
        let wired: Wired = text.parse().map_err(|e: String| anyhow!(e))?;
        if i < a.shelving.len() {
            a.shelving[i] = wired;
        } else {
            a.shelving.push(wired);
        }
    }
    let needed = readers_needed(a)?;
    for n in 0..needed {
        let current = a
            .readers
            .get(n)
            .cloned()
            .unwrap_or_else(|| a.default_reader(n));
        let text = one(
            input,
            out,
            &format!("Reader {} of {needed} (PROFILE@PORT)", n + 1),
            &format!("{}@{}", current.profile, current.at),
        )?;
        let wired: Wired = text.parse().map_err(|e: String| anyhow!(e))?;
        if n < a.readers.len() {
            a.readers[n] = wired;
        } else {
            a.readers.push(wired);
        }
    }
    a.broker = one(
        input,
        out,
        "MQTT broker (mqtt://stackroom@HOST:1883, mqtts://…, or embedded)",
        &a.broker,
    )?;
    a.data_dir = one(
        input,
        out,
        "Data directory",
        &a.data_dir.display().to_string(),
    )?
    .into();
    Ok(())
}

fn profile(answers: &Answers, name: &str) -> anyhow::Result<Profile> {
    let path = answers.profiles_dir.join(format!("{name}.toml"));
    Profile::load(&path).with_context(|| {
        format!(
            "device profile '{name}' (looked up in {})",
            answers.profiles_dir.display()
        )
    })
}

/// Carriages a reader of `ports` can cover, at two faces of sections × levels shelves.
fn carriages_per_reader(a: &Answers, ports: u16) -> u16 {
    ports / (2 * a.sections * a.levels).max(1)
}

/// How many readers the shelves need, with the readers given (then the default's) ports.
fn readers_needed(a: &Answers) -> anyhow::Result<usize> {
    let mut needed = 0;
    let mut n = 0;
    for _ in 0..a.ranges {
        let mut covered = 0;
        while covered < a.carriages {
            let reader = a
                .readers
                .get(n)
                .cloned()
                .unwrap_or_else(|| a.default_reader(n));
            let p = profile(a, &reader.profile)?;
            let ports = p.antenna_ports().ok_or_else(|| {
                anyhow!(
                    "profile '{}' is not a reader with antenna ports",
                    reader.profile
                )
            })?;
            let per = carriages_per_reader(a, ports);
            if per == 0 {
                bail!(
                    "reader '{}' has {ports} antenna ports, fewer than the {} shelves of one carriage: choose a reader with more ports (r2000-mux: 240)",
                    reader.profile,
                    2 * a.sections * a.levels
                );
            }
            covered += per;
            n += 1;
            needed += 1;
        }
    }
    Ok(needed)
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The transport of a device wired at `at`.
fn transport(at: &str, p: &Profile) -> anyhow::Result<String> {
    if let Some(prefix) = at.strip_prefix("mqtt:") {
        return Ok(format!("{{ mqtt = {{ prefix = {} }} }}", quote(prefix)));
    }
    if let Some(address) = at.strip_prefix("tcp:") {
        return Ok(format!(
            "{{ modbus_tcp = {{ address = {}, unit = 1 }} }}",
            quote(address)
        ));
    }
    let baud = p.serial.as_ref().map(|s| s.baud).ok_or_else(|| {
        anyhow!("'{at}': this device is not on a serial line (give tcp:… or mqtt:…)")
    })?;
    let unit = if p.modbus.is_some() { ", unit = 1" } else { "" };
    Ok(format!(
        "{{ serial = {{ path = {}, baud = {baud}{unit} }} }}",
        quote(at)
    ))
}

/// The config text.
pub fn render(a: &Answers) -> anyhow::Result<String> {
    if a.shelving.len() != usize::from(a.ranges) {
        bail!(
            "{} range(s) and {} shelving controller(s): give one --shelving per range",
            a.ranges,
            a.shelving.len()
        );
    }
    let mut t = String::new();
    let w = &mut t;
    writeln!(
        w,
        "# The room config of {} written by `stackroom init`. Every key is described in\n\
         # README.md (\"Configuration\"); config/demo-room.toml shows every section.\n\
         # `stackroom check-config FILE` checks it; the controller reads it at its start.\n",
        a.room_id
    )?;
    writeln!(
        w,
        "# Device profiles: {{profiles_dir}}/{{profile}}.toml (the package installs them here).\nprofiles_dir = {}\n",
        quote(&a.profiles_dir.display().to_string())
    )?;
    writeln!(
        w,
        "[site]\nid = {}\nname = {}\n\n[room]\nid = {}\nname = {}                  # or {{ zh = \"…\", en = \"…\" }}\nlanguage = {}\n",
        quote(&a.site_id),
        quote(&a.site_name),
        quote(&a.room_id),
        quote(&a.room_name),
        quote(&a.language)
    )?;
    writeln!(
        w,
        "# The API and staff page. To serve the LAN, listen on its address and give the\n\
         # API a certificate (tls_cert, tls_key), or put it behind a TLS proxy.\n\
         [api]\nlisten = {}\n",
        quote(&a.listen)
    )?;
    writeln!(
        w,
        "# The database, its backups and the MQTT passwords live here.\n[storage]\ndata_dir = {}\n",
        quote(&a.data_dir.display().to_string())
    )?;
    writeln!(
        w,
        "# The site broker (see README, \"The device bus\"); the controller's password is in\n\
         # DATA/mqtt-secrets/stackroom (`stackroom init` made it) or mqtt.password_env.\n\
         [mqtt]\nbroker = {}",
        quote(&a.broker)
    )?;
    if a.broker.starts_with("mqtts://") {
        writeln!(
            w,
            "ca_file = \"/etc/stackroom/broker-ca.pem\"       # the CA that signed the broker's certificate"
        )?;
    }
    writeln!(w)?;
    writeln!(
        w,
        "# Archive numbers (档号): change the pattern and parts to the site's rule.\n\
         [archive_number]\npattern = \"{{fonds}}-{{year}}-{{sequence}}\"\nseries = [\"fonds\", \"year\"]\n\n\
         [archive_number.parts]\nfonds = \"[0-9]{{4}}\"\nyear = \"[0-9]{{4}}\"\nsequence = \"[0-9]{{5}}\"\n"
    )?;
    writeln!(
        w,
        "# The ranges: carriages numbered from 1 at the left end; the outer faces of fixed end\n\
         # carriages stand against the wall and carry no shelves."
    )?;
    for r in 1..=a.ranges {
        writeln!(
            w,
            "[[ranges]]\nid = {r}\nname = {}\ncarriages = {}\nfixed_ends = \"both\"                  # both | first | last | none\ncarriage_width_mm = 600\naisle_width_mm = 900\nsections = {}\nlevels = {}\nshelf_capacity = {{ boxes = {} }}\n",
            quote(&range_name(r)),
            a.carriages,
            a.sections,
            a.levels,
            a.capacity
        )?;
    }
    writeln!(
        w,
        "# The shelving controllers, one per range. Only the controller commands motion, and\n\
         # only while every interlock allows it (README, \"How motions are kept safe\")."
    )?;
    for (i, s) in a.shelving.iter().enumerate() {
        let p = profile(a, &s.profile)?;
        if p.device.kind != DeviceKind::Shelving {
            bail!("'{}' is not a shelving controller's profile", s.profile);
        }
        writeln!(
            w,
            "[[devices]]\nid = \"shelving-{}\"\nprofile = {}\nrange = {}\ntransport = {}\n",
            i + 1,
            quote(&s.profile),
            i + 1,
            transport(&s.at, &p)?
        )?;
    }
    writeln!(
        w,
        "# The readers: every shelf has an antenna; a block maps a span of carriages' shelves,\n\
         # in address order (carriage, face, section, level), to consecutive ports."
    )?;
    let needed = readers_needed(a)?;
    if a.readers.len() > needed {
        bail!(
            "{} reader(s) given, the shelves need {needed}",
            a.readers.len()
        );
    }
    let readers: Vec<Wired> = (0..needed)
        .map(|n| {
            a.readers
                .get(n)
                .cloned()
                .unwrap_or_else(|| a.default_reader(n))
        })
        .collect();
    let mut blocks = String::new();
    let mut n = 0;
    for r in 1..=a.ranges {
        let mut first = 1;
        while first <= a.carriages {
            let reader = &readers[n];
            let p = profile(a, &reader.profile)?;
            if p.device.kind != DeviceKind::Reader {
                bail!("'{}' is not a reader's profile", reader.profile);
            }
            let per = carriages_per_reader(a, p.antenna_ports().unwrap_or(0));
            let last = (first + per - 1).min(a.carriages);
            writeln!(
                w,
                "[[devices]]\nid = \"reader-{}\"\nprofile = {}\ntransport = {}\n",
                n + 1,
                quote(&reader.profile),
                transport(&reader.at, &p)?
            )?;
            writeln!(
                blocks,
                "[[antenna_blocks]]\nreader = \"reader-{}\"\nrange = {r}\ncarriages = [{first}, {last}]\n",
                n + 1
            )?;
            first = last + 1;
            n += 1;
        }
    }
    w.push_str(&blocks);
    writeln!(
        w,
        "# Inventory sweeps: each antenna read for dwell_ms; a range a night, the room on Sundays.\n\
         [sweeps]\ndwell_ms = 200\nsync_confidence = 0.8\nsecond_look_dwell_ms = 300\n"
    )?;
    for r in 1..=a.ranges {
        writeln!(
            w,
            "[[sweeps.schedule]]\nname = \"nightly-{r}\"\ncron = \"0 {} * * 1-6\"\nscope = {{ range = {r} }}\napply = \"report\"\n",
            (r - 1) % 5 + 1
        )?;
    }
    writeln!(
        w,
        "[[sweeps.schedule]]\nname = \"weekly-room\"\ncron = \"0 1 * * 0\"\nscope = {{ room = true }}\napply = \"report\"\noverlap = \"wait\"\n"
    )?;
    writeln!(
        w,
        "# Backups of the database, verified, into DATA/backups (README, \"Backups\").\n\
         [backup]\ncron = \"30 0 * * *\"\ndir = \"backups\"\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 12\n"
    )?;
    writeln!(
        w,
        "# Circulation: which loans need approval, for how long, how many boxes a borrower holds.\n\
         [loans]\nmax_boxes_per_borrower = 20\nreading_room = {{ approval = \"none\", max_days = 7 }}\nexternal = {{ approval = \"approver\", max_days = 30, four_eyes = true }}\n"
    )?;
    writeln!(
        w,
        "# Not written by init, see config/demo-room.toml: [boxes.fields], [retention], [[places]],\n\
         # [environment] with its sensors, [[gates]], [labels], [shelving] timings."
    )?;
    Ok(t)
}

/// `A`, `B`, … `Z`, `AA`, …
fn range_name(r: u16) -> String {
    let mut n = r;
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        out.push(char::from(b'A' + (n % 26) as u8));
        n /= 26;
    }
    out.iter().rev().collect()
}

/// Writes the config to `out` (refusing to replace a file unless `force`), checks it as
/// the controller will, and makes the missing MQTT passwords; what it did, one line each.
pub fn write(a: &Answers, out: &Path, force: bool) -> anyhow::Result<Vec<String>> {
    if out.exists() && !force {
        bail!("{} exists: give --force to replace it", out.display());
    }
    let text = render(a)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    std::fs::write(out, text).with_context(|| out.display().to_string())?;
    let config = crate::config::RoomConfig::load(out)
        .with_context(|| format!("the config written to {} does not check", out.display()))?;
    let mut said = vec![format!("wrote {}", out.display())];
    if !matches!(config.mqtt, crate::config::Mqtt::Embedded { .. }) {
        let grants = crate::bus::grants(&config, &config.bus.user);
        let made = crate::bus::passwords(&config, &grants, true)?;
        said.push(format!(
            "MQTT passwords of {} user(s) in {}",
            made.len(),
            config.bus.secrets_dir(&config.data_dir).display()
        ));
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(dir: &Path) -> Answers {
        Answers {
            profiles_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles"),
            data_dir: dir.join("data"),
            ..Answers::defaults()
        }
    }

    #[test]
    fn the_written_config_checks_and_maps_every_shelf_to_an_antenna() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = answers(dir.path());
        a.shelving = vec![
            Answers::default_shelving(1),
            "mqtt-json-shelving@mqtt:devices/shelving-2"
                .parse()
                .unwrap(),
        ];
        let out = dir.path().join("etc").join("room.toml");
        let said = write(&a, &out, false).unwrap();
        assert_eq!(said.len(), 2, "{said:?}");
        let config = crate::config::RoomConfig::load(&out).unwrap();
        assert!(crate::bus::missing(&config).is_empty());
        assert!(config.layout.range(2).is_some() && config.layout.range(3).is_none());
        let covered: std::collections::HashSet<_> =
            config.antennas.iter().map(|x| x.shelf).collect();
        assert_eq!(covered.len(), config.layout.shelf_count());
        assert!(config.backup.is_some());
        // Not replaced without --force.
        assert!(
            write(&a, &out, false)
                .unwrap_err()
                .to_string()
                .contains("--force")
        );
    }

    #[test]
    fn answers_are_asked_and_a_small_reader_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = answers(dir.path());
        let typed = "gd\n广州供电局\nstack-9\n\nen\n3\nmany\n8\n\n\n\n\n\n\n\n\n\n\n\n\n\n";
        let mut shown = Vec::new();
        ask(&mut a, &mut typed.as_bytes(), &mut shown).unwrap();
        let shown = String::from_utf8(shown).unwrap();
        assert!(shown.contains("a whole number"), "{shown}");
        assert_eq!(
            (a.site_id.as_str(), a.room_id.as_str(), a.ranges),
            ("gd", "stack-9", 3)
        );
        assert_eq!(a.carriages, 8);
        assert_eq!(a.shelving.len(), 3);
        let text = render(&a).unwrap();
        assert!(text.contains("name = \"广州供电局\""), "{text}");
        // 32 ports cannot take a carriage of 48 shelves.
        a.readers = vec!["impinj-r700-hub@mqtt:devices/reader-1".parse().unwrap()];
        let e = render(&a).unwrap_err().to_string();
        assert!(e.contains("32 antenna ports"), "{e}");
        assert_eq!(range_name(27), "AA");
    }
}
