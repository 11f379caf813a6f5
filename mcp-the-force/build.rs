// The CLI example embeds `migrations/`; rebuild it when a file there is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
