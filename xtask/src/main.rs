//! Project automation: `cargo xtask demo | test | bench`.
fn main() -> anyhow::Result<()> {
    Ok(())
}
