//! Man pages generated from the clap definitions: `man/burrow.1` and `man/burrow-COMMAND.1`.
//! A unit test fails when the committed pages are out of date; regenerate them with
//! `BURROW_UPDATE_MAN=1 cargo test --lib man::`.

use clap::CommandFactory;

/// (file name, contents) of every page.
pub fn render_all() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let root = crate::cli::Cli::command().name("burrow");
    let mut pages = Vec::new();
    let mut buf = Vec::new();
    clap_mangen::Man::new(root.clone()).render(&mut buf)?;
    pages.push(("burrow.1".to_string(), buf));
    for sub in root.get_subcommands() {
        let name = format!("burrow-{}", sub.get_name());
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name.clone())).render(&mut buf)?;
        pages.push((format!("{name}.1"), buf));
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn man_pages_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let pages = super::render_all().unwrap();
        if std::env::var_os("BURROW_UPDATE_MAN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            for (name, body) in &pages {
                std::fs::write(dir.join(name), body).unwrap();
            }
        }
        let mut stale = Vec::new();
        for (name, body) in &pages {
            if std::fs::read(dir.join(name)).ok().as_ref() != Some(body) {
                stale.push(name.clone());
            }
        }
        assert!(
            stale.is_empty(),
            "man pages out of date: {stale:?}; run BURROW_UPDATE_MAN=1 cargo test --lib man::"
        );
    }
}
