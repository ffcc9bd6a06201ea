// sqlx's `migrate!` embeds the files under migrations/ at compile time; without this a new
// migration file would not rebuild the crate (sqlx documents the same build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
