//! Embeds the NHS.UK design system (npm `nhsuk-frontend`, pinned in `assets/package.json` and
//! `assets/package-lock.json`) and the portal's own few assets into the binary.
//!
//! When the package is not yet in `OUT_DIR`, this runs `npm ci --ignore-scripts` there (so a
//! fresh clone's `cargo build` fetches it from the npm registry once per target directory).
//! `CARERECORD_NHSUK_FRONTEND_DIR` may name an unpacked `nhsuk-frontend` package instead (for
//! machines without npm). The stylesheet is adjusted so nothing is ever loaded from a CDN:
//! the `@font-face` rules that point at the NHS font service are dropped (the design system's
//! own fallback, Arial, is used) and icon URLs are made relative to the stylesheet.
//!
//! Writes `$OUT_DIR/assets.rs`: the version (a content hash, part of every asset URL so
//! browsers may cache them for a year) and the table of embedded files.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

type BuildResult<T> = Result<T, Box<dyn Error>>;

fn main() -> BuildResult<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let assets = manifest.join("assets");
    for f in ["package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed=assets/{f}");
    }
    println!("cargo:rerun-if-changed=assets/static");
    println!("cargo:rerun-if-env-changed=CARERECORD_NHSUK_FRONTEND_DIR");

    let package = match env::var_os("CARERECORD_NHSUK_FRONTEND_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => npm_ci(&assets, &out.join("npm"))?,
    };
    let dist = package.join("dist").join("nhsuk");
    let staged = out.join("assets");
    if staged.exists() {
        fs::remove_dir_all(&staged)?;
    }
    fs::create_dir_all(staged.join("images"))?;

    let css = fs::read_to_string(dist.join("nhsuk-frontend.min.css"))
        .map_err(|e| format!("nhsuk-frontend.min.css in {}: {e}", dist.display()))?;
    fs::write(staged.join("nhsuk-frontend.min.css"), adjust_css(&css))?;
    let js = fs::read_to_string(dist.join("nhsuk-frontend.min.js"))?;
    fs::write(
        staged.join("nhsuk-frontend.min.js"),
        strip_source_map(&js, "//# sourceMappingURL="),
    )?;
    for entry in fs::read_dir(dist.join("assets").join("images"))? {
        let entry = entry?;
        let name = entry.file_name();
        let keep = name
            .to_str()
            .is_some_and(|n| n.ends_with(".svg") || n.ends_with(".png") || n.ends_with(".ico"));
        if keep {
            fs::copy(entry.path(), staged.join("images").join(&name))?;
        }
    }
    for entry in fs::read_dir(assets.join("static"))? {
        let entry = entry?;
        fs::copy(entry.path(), staged.join(entry.file_name()))?;
    }
    write_table(&staged, &out.join("assets.rs"))
}

/// Installs the locked package into `dir` unless it is already there.
fn npm_ci(assets: &Path, dir: &Path) -> BuildResult<PathBuf> {
    let package = dir.join("node_modules").join("nhsuk-frontend");
    let lock = fs::read(assets.join("package-lock.json"))?;
    let stamp = dir.join(".lock-installed");
    if package.join("package.json").exists() && fs::read(&stamp).ok().as_deref() == Some(&lock[..])
    {
        return Ok(package);
    }
    fs::create_dir_all(dir)?;
    fs::copy(assets.join("package.json"), dir.join("package.json"))?;
    fs::write(dir.join("package-lock.json"), &lock)?;
    let status = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(dir)
        .status()
        .map_err(|e| {
            format!(
                "carerecord-portal needs npm to fetch the NHS.UK design system (nhsuk-frontend): \
                 running npm failed ({e}). Install Node.js and npm (Debian: apt-get install npm), \
                 or set CARERECORD_NHSUK_FRONTEND_DIR to an unpacked nhsuk-frontend package."
            )
        })?;
    if !status.success() {
        return Err(format!(
            "`npm ci` for nhsuk-frontend failed ({status}) in {}: is the npm registry reachable?",
            dir.display()
        )
        .into());
    }
    fs::write(&stamp, &lock)?;
    Ok(package)
}

/// Drops `@font-face` rules that load from another site and makes icon URLs relative, so the
/// page never reaches outside carerecord.
fn adjust_css(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("@font-face{") {
        out.push_str(&rest[..start]);
        let block = &rest[start..];
        let end = block.find('}').map_or(block.len(), |i| i + 1);
        if !block[..end].contains("://") {
            out.push_str(&block[..end]);
        }
        rest = &block[end..];
    }
    out.push_str(rest);
    let out = out.replace("url(/assets/images/", "url(images/");
    strip_source_map(&out, "/*# sourceMappingURL=")
}

fn strip_source_map(text: &str, marker: &str) -> String {
    match text.rfind(marker) {
        Some(i) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// FNV-1a, 64-bit: a stable content hash without a build dependency.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn write_table(staged: &Path, target: &Path) -> BuildResult<()> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(staged)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            for inner in fs::read_dir(&path)? {
                let inner = inner?;
                files.push((
                    format!("images/{}", inner.file_name().to_string_lossy()),
                    inner.path(),
                ));
            }
        } else {
            files.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for (name, path) in &files {
        fnv(&mut hash, name.as_bytes());
        fnv(&mut hash, &fs::read(path)?);
    }
    let mut src = String::new();
    writeln!(
        src,
        "/// The content hash of every embedded asset: part of each asset URL."
    )?;
    writeln!(src, "pub const VERSION: &str = \"{:012x}\";", hash >> 16)?;
    writeln!(
        src,
        "/// Each asset: its path under `/assets/VERSION/`, its media type and its bytes."
    )?;
    writeln!(src, "pub static FILES: &[(&str, &str, &[u8])] = &[")?;
    for (name, path) in &files {
        writeln!(
            src,
            "    ({name:?}, {:?}, include_bytes!({:?})),",
            mime(name),
            path.display().to_string()
        )?;
    }
    writeln!(src, "];")?;
    fs::write(target, src)?;
    Ok(())
}
