//! `rte new`: a ready project for one saga step, from templates embedded in the binary.
//!
//! Every template holds one step (execute, compensate, an idempotency key, kv use), its
//! build, a unit test and a README. Placeholders in the files: `{{name}}` (the project),
//! `{{crate}}` (the name as a Rust crate), `{{step}}` (the step's name) and, for Rust,
//! `{{sdk}}` (the SDK dependency line).

use std::path::{Path, PathBuf};

/// A template's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the `rte-plugin-sdk` crate.
    Rust,
    /// Python, with componentize-py and the `rte_step.py` helper.
    Python,
    /// JavaScript, with componentize-qjs, the `rte_step.js` helper and its TypeScript types.
    Js,
    /// C, with clang and wasi-libc, `wit-bindgen c` and the `rte_step.h` helper.
    C,
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot name a project, a crate and a step.
    #[error(
        "project name `{0}` must start with a letter and hold only letters, digits, `-` and `_`"
    )]
    BadName(String),
    /// The directory exists and is not empty.
    #[error("{0} exists and is not empty")]
    NotEmpty(PathBuf),
    /// Writing a file failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error beneath.
        #[source]
        source: std::io::Error,
    },
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// The language.
    pub lang: Lang,
    /// The project name (also the directory's, and the base of the step's name).
    pub name: String,
    /// Where to create it (`None`: a directory `name` in the current one).
    pub dir: Option<PathBuf>,
    /// For Rust: depend on the SDK at this path instead of its crates.io release.
    pub sdk_path: Option<PathBuf>,
}

/// The SDK version the Rust template depends on: the WIT package's version.
const SDK_VERSION: &str = "0.2.0";

const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
    (
        "rust-toolchain.toml",
        include_str!("templates/rust/rust-toolchain.toml"),
    ),
    (".gitignore", include_str!("templates/rust/.gitignore")),
    ("README.md", include_str!("templates/rust/README.md")),
    ("src/lib.rs", include_str!("templates/rust/src/lib.rs")),
];

/// The contract, shipped into projects whose toolchain reads WIT directly.
const WIT: &str = include_str!("../../../wit/saga.wit");

const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("templates/python/app.py")),
    ("rte_step.py", include_str!("templates/python/rte_step.py")),
    ("test_app.py", include_str!("templates/python/test_app.py")),
    ("build.sh", include_str!("templates/python/build.sh")),
    (".gitignore", include_str!("templates/python/.gitignore")),
    ("README.md", include_str!("templates/python/README.md")),
    ("wit/saga.wit", WIT),
];

const JS: &[(&str, &str)] = &[
    ("step.js", include_str!("templates/js/step.js")),
    ("main.js", include_str!("templates/js/main.js")),
    ("rte_step.js", include_str!("templates/js/rte_step.js")),
    ("rte_step.d.ts", include_str!("templates/js/rte_step.d.ts")),
    ("step.test.js", include_str!("templates/js/step.test.js")),
    ("package.json", include_str!("templates/js/package.json")),
    ("tsconfig.json", include_str!("templates/js/tsconfig.json")),
    ("build.sh", include_str!("templates/js/build.sh")),
    (".gitignore", include_str!("templates/js/.gitignore")),
    ("README.md", include_str!("templates/js/README.md")),
    ("wit/saga.wit", WIT),
];

const C: &[(&str, &str)] = &[
    ("step.c", include_str!("templates/c/step.c")),
    ("rte_step.h", include_str!("templates/c/rte_step.h")),
    ("rte_step.c", include_str!("templates/c/rte_step.c")),
    ("test_step.c", include_str!("templates/c/test_step.c")),
    ("test.sh", include_str!("templates/c/test.sh")),
    ("build.sh", include_str!("templates/c/build.sh")),
    (".gitignore", include_str!("templates/c/.gitignore")),
    ("README.md", include_str!("templates/c/README.md")),
    ("wit/saga.wit", WIT),
];

/// The step name a project `name` gets: `{name}_reserve`, in snake case.
pub fn step_name(name: &str) -> String {
    format!("{}_reserve", name.replace('-', "_").to_lowercase())
}

/// Create the project; returns its directory.
pub fn create(project: &NewProject) -> Result<PathBuf, ScaffoldError> {
    let name = &project.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ScaffoldError::BadName(name.clone()));
    }
    let dir = project
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(name.as_str()));
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir));
    }
    let sdk = match &project.sdk_path {
        Some(path) => format!(
            "rte-plugin-sdk = {{ version = \"{SDK_VERSION}\", path = \"{}\" }}",
            path.display()
        ),
        None => format!("rte-plugin-sdk = \"{SDK_VERSION}\""),
    };
    let files = match project.lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::C => C,
    };
    for (path, text) in files {
        // The WIT is copied as it is.
        let text = if path.ends_with(".wit") {
            text.to_string()
        } else {
            text.replace("{{name}}", name)
                .replace("{{crate}}", &name.replace('-', "_"))
                .replace("{{step}}", &step_name(name))
                .replace("{{sdk}}", &sdk)
        };
        write(&dir.join(path), &text, path.ends_with(".sh"))?;
    }
    Ok(dir)
}

fn write(path: &Path, text: &str, executable: bool) -> Result<(), ScaffoldError> {
    let err = |source| ScaffoldError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, text).map_err(err)?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = executable;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_filled_in() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("my-shop");
            create(&NewProject {
                lang,
                name: "my-shop".into(),
                dir: Some(dir.clone()),
                sdk_path: None,
            })
            .unwrap();
            let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
            assert!(readme.contains("my_shop_reserve"), "{lang:?}: {readme}");
            for entry in walk(&dir) {
                let text = std::fs::read_to_string(&entry).unwrap();
                assert!(!text.contains("{{name}}"), "{}", entry.display());
                assert!(!text.contains("{{step}}"), "{}", entry.display());
            }
            // A second time into the same place is refused.
            let again = create(&NewProject {
                lang,
                name: "my-shop".into(),
                dir: Some(dir),
                sdk_path: None,
            });
            assert!(matches!(again, Err(ScaffoldError::NotEmpty(_))));
        }
        let bad = create(&NewProject {
            lang: Lang::Rust,
            name: "../x".into(),
            dir: None,
            sdk_path: None,
        });
        assert!(matches!(bad, Err(ScaffoldError::BadName(_))));
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
