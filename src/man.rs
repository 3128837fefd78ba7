//! Man pages generated from the clap definitions: `man/burrow.1`, `man/burrow-COMMAND.1`, and
//! for nested commands `man/burrow-COMMAND-SUBCOMMAND.1` (`burrow-image-ls.1`). A unit test
//! fails when the committed pages are out of date or man/ holds a page of no command;
//! regenerate them with `BURROW_UPDATE_MAN=1 cargo test --lib man::`.

use clap::CommandFactory;

/// (file name, contents) of every page.
pub fn render_all() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let root = crate::cli::Cli::command().name("burrow");
    let mut pages = Vec::new();
    render(&root, &["burrow"], &mut pages)?;
    Ok(pages)
}

/// The page of `cmd` (invoked as `words`: `burrow image ls`), then those of its subcommands,
/// depth first.
fn render(
    cmd: &clap::Command,
    words: &[&str],
    pages: &mut Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    let name = words.join("-");
    let page = cmd.clone().name(name.clone()).bin_name(words.join(" "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    pages.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        let mut words = words.to_vec();
        words.push(sub.get_name());
        render(sub, &words, pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    #[test]
    fn man_pages_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let pages = super::render_all().unwrap();
        let names: BTreeSet<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        let update = std::env::var_os("BURROW_UPDATE_MAN").is_some();
        if update {
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
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !names.contains(name.as_str()) {
                if update {
                    std::fs::remove_file(dir.join(&name)).unwrap();
                } else {
                    stale.push(format!("{name} (no such command)"));
                }
            }
        }
        assert!(
            stale.is_empty(),
            "man pages out of date: {stale:?}; run BURROW_UPDATE_MAN=1 cargo test --lib man::"
        );
    }

    #[test]
    fn nested_commands_have_pages() {
        let pages = super::render_all().unwrap();
        let names: BTreeSet<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "burrow.1",
            "burrow-run.1",
            "burrow-image-ls.1",
            "burrow-network-create.1",
        ] {
            assert!(names.contains(want), "no {want} in {names:?}");
        }
        let (_, ls) = pages
            .iter()
            .find(|(n, _)| n == "burrow-image-ls.1")
            .unwrap();
        let ls = String::from_utf8_lossy(ls);
        // Named after its file; the synopsis shows how it is invoked.
        assert!(ls.contains(".TH burrow-image-ls 1"), "{ls}");
        assert!(ls.contains("\\fBburrow image ls\\fR"), "{ls}");
    }
}
