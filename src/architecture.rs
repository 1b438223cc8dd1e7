//! The layers of ARCHITECTURE.md, checked: each module of the library may use only the
//! modules before it in [`LAYERS`], the foundation does no I/O, hw-sim and the wire crate
//! never depend on the controller, and the code map names every module there is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's modules, lowest first, in their layers. A module may use the modules of
/// the layers below it and those before it in its own layer.
const LAYERS: &[(&str, &[&str])] = &[
    // Values and rules with no I/O: no tokio, no SQLite.
    (
        "foundation",
        &["time", "shelf", "name", "archive_no", "layout"],
    ),
    // What every long-running task shares (tokio, nothing of the domain).
    ("runtime", &["link"]),
    // The store and the records kept in it that need nothing of the room config.
    ("records", &["store", "audit", "access", "lookups", "loans"]),
    // The room as configured.
    ("room", &["config"]),
    // Devices and the services over them and the store.
    (
        "services",
        &[
            "bus",
            "location",
            "labels",
            "documents",
            "contents",
            "intake",
            "retention",
            "holdings",
            "shelving",
            "rfid",
            "environment",
            "gate",
            "backup",
        ],
    ),
    // What faces the outside: the publisher, HTTP, the commands.
    (
        "edges",
        &[
            "mqtt",
            "http",
            "logging",
            "page",
            "api",
            "server",
            "demo",
            "sim",
            "cli_sweep",
            "init",
            "site",
        ],
    ),
];

/// Modules that are not part of the layering (this check itself).
const OUTSIDE: &[&str] = &["architecture"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rank() -> BTreeMap<&'static str, usize> {
    LAYERS
        .iter()
        .flat_map(|(_, modules)| modules.iter())
        .enumerate()
        .map(|(i, m)| (*m, i))
        .collect()
}

fn layer_of(module: &str) -> &'static str {
    LAYERS
        .iter()
        .find(|(_, modules)| modules.contains(&module))
        .map(|(layer, _)| *layer)
        .unwrap_or("?")
}

/// The modules `lib.rs` declares.
fn declared() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect()
}

/// A source file of the library: its path under `src/`, the top-level module it belongs
/// to (`main` and `bin` for the binaries) and its text.
struct Source {
    rel: PathBuf,
    module: String,
    text: String,
}

/// Every `.rs` file under `src/`.
fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = root().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|file| {
            let rel = file.strip_prefix(&src).unwrap().to_path_buf();
            let first = rel.components().next().unwrap().as_os_str();
            let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            Source { rel, module, text }
        })
        .collect()
}

/// The code without its comments (a doc link may point anywhere).
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file names through `crate::`, with `use crate::{a, b::c}`
/// groups taken apart.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // part of another path (`my_crate::`, `x::crate::`)
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The items at the group's first level.
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    out.insert(ident(item.trim()));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

#[test]
fn the_group_parser_takes_use_lists_apart() {
    let found =
        uses("use crate::{a::B, c::{d, e}, f};\nlet x = crate::g::h();\nstackroom_wire::crate::z");
    let want: BTreeSet<String> = ["a", "c", "f", "g"].map(String::from).into();
    assert_eq!(found, want);
}

#[test]
fn every_module_is_in_one_layer() {
    let mut listed: Vec<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    listed.extend(OUTSIDE);
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a module is listed twice");
    let declared = declared();
    let listed: BTreeSet<String> = unique.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        declared, listed,
        "lib.rs and the layers of src/architecture.rs must name the same modules"
    );
}

#[test]
fn modules_use_only_modules_below_them() {
    let rank = rank();
    let mut wrong = Vec::new();
    for Source { rel, module, text } in sources() {
        // The binaries sit on top of everything.
        let Some(&own) = rank.get(module.as_str()) else {
            continue;
        };
        for used in uses(&code(&text)) {
            if let Some(&theirs) = rank.get(used.as_str())
                && theirs > own
            {
                wrong.push(format!(
                    "src/{} ({}, {}) uses {used} ({})",
                    rel.display(),
                    module,
                    layer_of(&module),
                    layer_of(&used)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers (see ARCHITECTURE.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_foundation_does_no_io() {
    let foundation = LAYERS[0].1;
    for Source { rel, module, text } in sources() {
        if !foundation.contains(&module.as_str()) {
            continue;
        }
        let text = code(&text);
        for io in ["tokio::", "rusqlite::", "std::fs::", "std::net::"] {
            assert!(!text.contains(io), "src/{} uses {io}", rel.display());
        }
    }
}

#[test]
fn the_simulator_and_the_wire_know_nothing_of_the_controller() {
    for manifest in ["hw-sim/Cargo.toml", "wire/Cargo.toml"] {
        let text = std::fs::read_to_string(root().join(manifest)).unwrap();
        let table: toml::Table = text.parse().unwrap();
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = table.get(section).and_then(|d| d.as_table()) {
                assert!(
                    !deps.contains_key("stackroom"),
                    "{manifest} [{section}] depends on the controller"
                );
            }
        }
    }
    let wire = std::fs::read_to_string(root().join("wire/Cargo.toml")).unwrap();
    assert!(!wire.contains("hw-sim"), "the wire crate depends on hw-sim");
}

#[test]
fn the_code_map_names_every_module_and_no_other() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let named: BTreeSet<String> = map
        .lines()
        .filter_map(|l| l.strip_prefix("#### `"))
        .map(|l| l.trim_end_matches('`').to_string())
        .collect();
    let mut modules = declared();
    for m in OUTSIDE {
        modules.remove(*m);
    }
    assert_eq!(
        named, modules,
        "ARCHITECTURE.md's code map (#### `module` headings) and lib.rs differ"
    );
}

#[test]
fn only_the_range_controller_makes_motion_commands() {
    let motion = ["Command::OpenAisle", "Command::Close", "Command::Ventilate"];
    for Source { rel, text, .. } in sources() {
        if rel == Path::new("shelving/controller.rs")
            || rel == Path::new("architecture.rs")
            || rel.ends_with("tests.rs")
        {
            continue;
        }
        // Test modules drive drivers by hand; the code above them may only encode.
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code(production).lines() {
            if motion.iter().any(|m| line.contains(m)) {
                assert!(
                    line.contains("=>"),
                    "src/{} makes a motion command (only the range controller may): {}",
                    rel.display(),
                    line.trim()
                );
            }
        }
    }
}
