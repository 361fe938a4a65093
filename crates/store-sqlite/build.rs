//! `sqlx::migrate!` embeds `migrations/` at compile time, but cargo does not know that the
//! directory is an input: without this, a new migration file is not seen until something
//! else in the crate changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
