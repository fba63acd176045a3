//! Embeds a build id: a hash of everything the binary is compiled from (src/, templates/,
//! the media data iso/*.toml, Cargo.toml, Cargo.lock, this file). Two mtkit binaries with the same id run the same
//! code whatever their target (glibc or static musl) or file dates, which is what `build`
//! compares before embedding the static binary beside it.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

fn main() {
    let top = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut all = Vec::new();
    for d in ["src", "templates"] {
        println!("cargo:rerun-if-changed={d}");
        files(&top.join(d), &mut all);
    }
    // iso/ also holds scripts that are not compiled in: only its data files count.
    println!("cargo:rerun-if-changed=iso");
    let mut media = Vec::new();
    files(&top.join("iso"), &mut media);
    all.extend(
        media
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "toml")),
    );
    for f in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={f}");
        all.push(top.join(f));
    }
    all.sort();
    let mut h = Sha256::new();
    for p in &all {
        let rel = p.strip_prefix(&top).unwrap_or(p);
        // Length-prefixed, so that moving bytes between a name and a file changes the hash.
        let name = rel.to_string_lossy();
        let data = std::fs::read(p).unwrap_or_default();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    let id: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=MTKIT_BUILD_ID={id}");
}
