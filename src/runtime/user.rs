//! `-u user[:group]` resolved against the container's own /etc/passwd and /etc/group.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6).then_some(())?;
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3).then_some(())?;
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

fn resolve_group(spec: &str, group: &str) -> Result<u32, UserError> {
    group_entries(group)
        .find(|g| g.name == spec)
        .map(|g| g.gid)
        .or_else(|| spec.parse().ok())
        .ok_or_else(|| UserError::NoGroup(spec.to_string()))
}

/// Docker's rules: a name must exist in passwd; a number need not (gid 0, home `/`);
/// supplementary groups are those that list the user by name, plus `--group-add`.
pub fn resolve(
    spec: &str,
    passwd: &str,
    group: &str,
    group_add: &[String],
) -> Result<ResolvedUser, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = passwd_entries(passwd)
        .find(|e| e.name == user_part)
        .or_else(|| {
            let uid: u32 = user_part.parse().ok()?;
            passwd_entries(passwd).find(|e| e.uid == uid)
        });
    let (uid, mut gid, home, name) = match (&entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), None),
        (None, Err(_)) => return Err(UserError::NoUser(user_part.to_string())),
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = resolve_group(g, group)?;
    }
    let mut additional_gids: Vec<u32> = match name {
        Some(name) => group_entries(group)
            .filter(|g| g.members.contains(&name))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    for g in group_add {
        additional_gids.push(resolve_group(g, group)?);
    }
    additional_gids.retain(|&g| g != gid);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:root\n";

    #[test]
    fn by_name_with_supplementary_groups() {
        let u = resolve("app", PASSWD, GROUP, &[]).unwrap();
        assert_eq!(
            u,
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![2000],
                home: "/home/app".into()
            }
        );
    }

    #[test]
    fn root_by_default() {
        let u = resolve("", PASSWD, GROUP, &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, vec![10]);
    }

    #[test]
    fn numeric_ids_need_no_entries() {
        let u = resolve("4242:99", PASSWD, GROUP, &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 99, "/"));
        let u = resolve("1000:extra", PASSWD, GROUP, &["wheel".into(), "7".into()]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 2000));
        assert_eq!(u.additional_gids, vec![7, 10]);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(
            resolve("nobody", PASSWD, GROUP, &[]),
            Err(UserError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve("app:nogroup", PASSWD, GROUP, &[]),
            Err(UserError::NoGroup("nogroup".into()))
        );
    }
}
