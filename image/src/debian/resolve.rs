//! Dependency resolution: from a few root package names to the closed set of
//! packages to unpack.
//!
//! Hearth unpacks packages into an image; it never runs maintainer scripts. So the
//! walk follows `Pre-Depends` and `Depends` only (no Recommends, no Conflicts/Breaks,
//! no Essential set), and stops at [`DEFAULT_EXCLUDE`]: tools that only matter to a
//! package manager at install time.
//!
//! Rules, in the order apt applies them:
//! - a dependency group (`a | b`) is already satisfied when any alternative is
//!   selected (or provided) in a fitting version, or is excluded;
//! - otherwise the first alternative with a candidate wins;
//! - a candidate for a name is the highest version (across all sources) that meets
//!   the version constraint, unless the lock pins a version that still meets it;
//!   a real package beats a virtual one; among providers the lowest name wins (so
//!   results are deterministic); an unversioned `Provides` never meets a versioned
//!   constraint.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::error::DebianError;
use super::packages::Package;
use super::version::{self, Relation};

/// Packages that only a package manager needs while installing (maintainer
/// scripts, initramfs generators, account tools): never pulled into an image.
/// Reaching one of them ends that branch of the walk.
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "kmod",
    "linux-base",
    "initramfs-tools",
    "initramfs-tools-core",
    "linux-initramfs-tool",
    "debconf",
    "debconf-2.0",
    "adduser",
    "perl-base",
    "init-system-helpers",
    "dpkg",
    "lsb-base",
    "sysvinit-utils",
    "apparmor",
    // mdadm depends on it for its udev rules; Hearth runs no udevd (stord reads
    // kernel uevents itself), and it would drag in systemd's shared library.
    "udev",
];

/// One alternative of a dependency: a name and an optional version constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    pub constraint: Option<(Relation, String)>,
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.constraint {
            Some((rel, v)) => write!(f, "{} ({} {v})", self.name, rel.as_str()),
            None => f.write_str(&self.name),
        }
    }
}

/// Parses a `Depends`-style field into groups of alternatives.
pub fn parse_relations(field: &str) -> Result<Vec<Vec<Dep>>, String> {
    let mut groups = Vec::new();
    for group in field.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let alts = group
            .split('|')
            .map(parse_dep)
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(alts);
    }
    Ok(groups)
}

fn parse_dep(text: &str) -> Result<Dep, String> {
    // Drop architecture lists `[amd64]` and build profiles `<!nocheck>` (outside
    // the version parentheses, where `<` is an operator).
    let mut clean = String::with_capacity(text.len());
    let mut in_paren = false;
    let mut skip_to: Option<char> = None;
    for c in text.chars() {
        if let Some(end) = skip_to {
            if c == end {
                skip_to = None;
            }
            continue;
        }
        match c {
            '(' => in_paren = true,
            ')' => in_paren = false,
            '[' if !in_paren => skip_to = Some(']'),
            '<' if !in_paren => skip_to = Some('>'),
            _ => {}
        }
        if skip_to.is_none() {
            clean.push(c);
        }
    }
    let clean = clean.trim();
    let (name, rest) = match clean.find(|c: char| c == '(' || c.is_whitespace()) {
        Some(i) => (&clean[..i], clean[i..].trim()),
        None => (clean, ""),
    };
    let name = name.split(':').next().unwrap_or(name);
    if name.is_empty() {
        return Err(format!("empty package name in `{text}`"));
    }
    let constraint = if rest.is_empty() {
        None
    } else {
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("bad version constraint in `{text}`"))?
            .trim();
        let split = inner
            .find(|c: char| !matches!(c, '<' | '>' | '='))
            .unwrap_or(inner.len());
        let rel =
            Relation::parse(&inner[..split]).ok_or_else(|| format!("bad operator in `{text}`"))?;
        let ver = inner[split..].trim();
        if ver.is_empty() {
            return Err(format!("missing version in `{text}`"));
        }
        Some((rel, ver.to_string()))
    };
    Ok(Dep {
        name: name.to_string(),
        constraint,
    })
}

/// All known packages, indexed by name and by what they provide.
struct Universe<'a> {
    /// Real packages by name, highest version first.
    by_name: HashMap<&'a str, Vec<&'a Package>>,
    /// Providers of a virtual name, with the provided version if any.
    providers: HashMap<String, Vec<(&'a Package, Option<String>)>>,
}

impl<'a> Universe<'a> {
    fn new(packages: &'a [Package]) -> Universe<'a> {
        let mut by_name: HashMap<&str, Vec<&Package>> = HashMap::new();
        let mut providers: HashMap<String, Vec<(&Package, Option<String>)>> = HashMap::new();
        for p in packages {
            by_name.entry(p.name.as_str()).or_default().push(p);
            if !p.provides.is_empty() {
                for group in parse_relations(&p.provides).unwrap_or_default() {
                    for d in group {
                        let v = d.constraint.map(|(_, v)| v);
                        providers.entry(d.name).or_default().push((p, v));
                    }
                }
            }
        }
        for list in by_name.values_mut() {
            list.sort_by(|a, b| version::compare(&b.version, &a.version));
        }
        for list in providers.values_mut() {
            list.sort_by(|a, b| {
                a.0.name
                    .cmp(&b.0.name)
                    .then_with(|| version::compare(&b.0.version, &a.0.version))
            });
        }
        Universe { by_name, providers }
    }

    fn meets(dep: &Dep, version: Option<&str>) -> bool {
        match (&dep.constraint, version) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((rel, want)), Some(have)) => rel.satisfied_by(have, want),
        }
    }

    /// The package to install for `dep`, if any.
    fn candidate(&self, dep: &Dep, pins: &HashMap<String, String>) -> Option<&'a Package> {
        if let Some(list) = self.by_name.get(dep.name.as_str()) {
            let fitting = || list.iter().filter(|p| Self::meets(dep, Some(&p.version)));
            if let Some(pin) = pins.get(&dep.name) {
                if let Some(p) = fitting().find(|p| &p.version == pin) {
                    return Some(p);
                }
            }
            if let Some(p) = fitting().next() {
                return Some(p);
            }
        }
        self.providers
            .get(&dep.name)?
            .iter()
            .find(|(_, v)| Self::meets(dep, v.as_deref()))
            .map(|(p, _)| *p)
    }

    /// Whether `dep` is met by what is already selected.
    fn satisfied(&self, dep: &Dep, selected: &BTreeMap<&'a str, &'a Package>) -> bool {
        if let Some(p) = selected.get(dep.name.as_str()) {
            if Self::meets(dep, Some(&p.version)) {
                return true;
            }
        }
        self.providers.get(&dep.name).is_some_and(|list| {
            list.iter().any(|(p, v)| {
                selected
                    .get(p.name.as_str())
                    .is_some_and(|s| std::ptr::eq(*s, *p))
                    && Self::meets(dep, v.as_deref())
            })
        })
    }
}

/// Resolves `roots` against `packages`. `pins` (name → version, from an existing
/// lock) are kept when still available and fitting. Returns packages sorted by name.
pub fn resolve(
    packages: &[Package],
    roots: &[String],
    exclude: &HashSet<String>,
    pins: &HashMap<String, String>,
    sources_desc: &str,
) -> Result<Vec<Package>, DebianError> {
    let universe = Universe::new(packages);
    let mut selected: BTreeMap<&str, &Package> = BTreeMap::new();
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue: VecDeque<&Package> = VecDeque::new();

    for root in roots {
        if exclude.contains(root) {
            log::warn!("root package {root} is in the exclusion list; skipping it");
            continue;
        }
        let dep = parse_dep(root).map_err(|_| DebianError::UnknownRoot {
            name: root.clone(),
            sources: sources_desc.into(),
        })?;
        if universe.satisfied(&dep, &selected) {
            continue;
        }
        let p = universe
            .candidate(&dep, pins)
            .ok_or_else(|| DebianError::UnknownRoot {
                name: root.clone(),
                sources: sources_desc.into(),
            })?;
        if selected.insert(p.name.as_str(), p).is_none() {
            queue.push_back(p);
        }
    }

    let chain = |parent: &HashMap<&str, &str>, leaf: &str| -> Vec<String> {
        let mut c = vec![leaf.to_string()];
        let mut cur = leaf;
        while let Some(p) = parent.get(cur) {
            c.push(p.to_string());
            cur = p;
            if c.len() > 1000 {
                break;
            }
        }
        c.reverse();
        c
    };

    while let Some(pkg) = queue.pop_front() {
        let unresolvable = |dependency: String, reason: String, parent: &HashMap<&str, &str>| {
            DebianError::Unresolvable {
                dependency,
                chain: chain(parent, &pkg.name),
                reason,
            }
        };
        let mut groups = Vec::new();
        for field in [&pkg.pre_depends, &pkg.depends] {
            groups.extend(parse_relations(field).map_err(|e| {
                unresolvable(field.to_string(), format!("cannot parse: {e}"), &parent)
            })?);
        }
        for group in groups {
            if group
                .iter()
                .any(|d| exclude.contains(&d.name) || universe.satisfied(d, &selected))
            {
                continue;
            }
            let pick = group.iter().find_map(|d| universe.candidate(d, pins));
            let Some(p) = pick else {
                let text: Vec<String> = group.iter().map(Dep::to_string).collect();
                let reason = describe_failure(&universe, &group);
                return Err(unresolvable(text.join(" | "), reason, &parent));
            };
            if let Some(existing) = selected.get(p.name.as_str()) {
                let text: Vec<String> = group.iter().map(Dep::to_string).collect();
                return Err(unresolvable(
                    text.join(" | "),
                    format!(
                        "{} {} is already selected and does not fit (would need {})",
                        existing.name, existing.version, p.version
                    ),
                    &parent,
                ));
            }
            selected.insert(p.name.as_str(), p);
            parent.insert(p.name.as_str(), pkg.name.as_str());
            queue.push_back(p);
        }
    }
    Ok(selected.into_values().cloned().collect())
}

fn describe_failure(universe: &Universe, group: &[Dep]) -> String {
    let parts: Vec<String> = group
        .iter()
        .map(|d| match universe.by_name.get(d.name.as_str()) {
            Some(list) => {
                let versions: Vec<&str> = list.iter().map(|p| p.version.as_str()).collect();
                format!("{} has only {}", d.name, versions.join(", "))
            }
            None if universe.providers.contains_key(&d.name) => {
                format!("no provider of {} fits", d.name)
            }
            None => format!("no package {} in the archive", d.name),
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pkg(name: &str, version: &str, depends: &str, provides: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            pre_depends: String::new(),
            depends: depends.into(),
            provides: provides.into(),
            filename: format!("pool/{name}_{version}.deb"),
            size: 1,
            sha256: "0".repeat(64),
            essential: false,
            priority: "optional".into(),
            source_uri: Arc::from("http://mirror.invalid/debian"),
        }
    }

    fn default_exclude() -> HashSet<String> {
        DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect()
    }

    fn names(r: &[Package]) -> Vec<String> {
        r.iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect()
    }

    fn run(pkgs: &[Package], roots: &[&str]) -> Result<Vec<Package>, DebianError> {
        let roots: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
        resolve(pkgs, &roots, &default_exclude(), &HashMap::new(), "test")
    }

    #[test]
    fn parses_relations() {
        let g = parse_relations(
            "libc6 (>= 2.34), foo:any | bar (<<2.0~) [amd64], baz <!nocheck>, x (= 1:2-3)",
        )
        .unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0][0].to_string(), "libc6 (>= 2.34)");
        assert_eq!(g[1][0].name, "foo");
        assert_eq!(g[1][1].to_string(), "bar (<< 2.0~)");
        assert_eq!(g[2][0].to_string(), "baz");
        assert_eq!(g[3][0].to_string(), "x (= 1:2-3)");
        assert!(parse_relations("a (>= )").is_err());
        assert!(parse_relations("a (~ 1)").is_err());
    }

    #[test]
    fn kernel_metapackage_stops_at_excluded_tools() {
        let pkgs = vec![
            pkg("linux-image-amd64", "6.1.140-1", "linux-image-6.1.0-37-amd64 (= 6.1.140-1)", ""),
            pkg("linux-image-amd64", "6.1.137-1", "linux-image-6.1.0-35-amd64 (= 6.1.137-1)", ""),
            pkg(
                "linux-image-6.1.0-37-amd64",
                "6.1.140-1",
                "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
                "",
            ),
            pkg("linux-image-6.1.0-35-amd64", "6.1.137-1", "kmod", ""),
            pkg("kmod", "30", "libc6", ""),
        ];
        let r = run(&pkgs, &["linux-image-amd64"]).unwrap();
        assert_eq!(
            names(&r),
            [
                "linux-image-6.1.0-37-amd64=6.1.140-1",
                "linux-image-amd64=6.1.140-1"
            ]
        );
    }

    #[test]
    fn alternatives_provides_and_constraints() {
        let pkgs = vec![
            pkg(
                "app",
                "1",
                "missing | liba (>= 2), mta, libc6 (>= 2.36)",
                "",
            ),
            pkg("liba", "1", "", ""),
            pkg("liba", "3", "libc6", ""),
            pkg("libc6", "2.36-9", "libgcc-s1", ""),
            pkg("libc6", "2.36-9+deb12u1", "libgcc-s1", ""),
            pkg("libgcc-s1", "12.2.0-14", "libc6 (>= 2.35)", ""),
            pkg("postfix", "3.7", "", "mta, mail-transport-agent"),
            pkg("exim4", "4.96", "", "mta"),
        ];
        let r = run(&pkgs, &["app"]).unwrap();
        assert_eq!(
            names(&r),
            [
                "app=1",
                "exim4=4.96",
                "liba=3",
                "libc6=2.36-9+deb12u1",
                "libgcc-s1=12.2.0-14"
            ]
        );

        // A lock pin is kept while it fits.
        let pins = HashMap::from([("libc6".to_string(), "2.36-9".to_string())]);
        let r = resolve(&pkgs, &["app".into()], &default_exclude(), &pins, "t").unwrap();
        assert!(names(&r).contains(&"libc6=2.36-9".to_string()));

        // Versioned dependency on a virtual package: only versioned Provides count.
        let pkgs = vec![
            pkg("b", "1", "virt (>= 2)", ""),
            pkg("p1", "1", "", "virt"),
            pkg("p2", "1", "", "virt (= 2.5)"),
        ];
        assert_eq!(names(&run(&pkgs, &["b"]).unwrap()), ["b=1", "p2=1"]);
    }

    #[test]
    fn already_selected_alternative_wins() {
        let pkgs = vec![
            pkg("root", "1", "x, y", ""),
            pkg("x", "1", "b | a", ""),
            pkg("y", "1", "a", ""),
            pkg("a", "1", "", ""),
            pkg("b", "1", "", ""),
        ];
        // x picks b first (the first alternative), y then needs a.
        assert_eq!(
            names(&run(&pkgs, &["root"]).unwrap()),
            ["a=1", "b=1", "root=1", "x=1", "y=1"]
        );
        let pkgs = vec![
            pkg("root", "1", "y, x", ""),
            pkg("x", "1", "b | a", ""),
            pkg("y", "1", "a", ""),
            pkg("a", "1", "", ""),
            pkg("b", "1", "", ""),
        ];
        // Now a is selected before x is looked at: b is not needed.
        assert_eq!(
            names(&run(&pkgs, &["root"]).unwrap()),
            ["a=1", "root=1", "x=1", "y=1"]
        );
    }

    #[test]
    fn exclusion_applies_to_alternatives_and_custom_lists() {
        let pkgs = vec![
            pkg("d", "1", "debconf (>= 0.5) | debconf-2.0, adduser", ""),
            pkg("debconf", "1.5", "perl-base", ""),
            pkg("adduser", "3", "", ""),
        ];
        assert_eq!(names(&run(&pkgs, &["d"]).unwrap()), ["d=1"]);
        let r = resolve(&pkgs, &["d".into()], &HashSet::new(), &HashMap::new(), "t");
        let err = r.unwrap_err();
        assert!(err.to_string().contains("perl-base"), "{err}");
    }

    #[test]
    fn unresolvable_names_the_chain() {
        let pkgs = vec![
            pkg("top", "1", "mid", ""),
            pkg("mid", "1", "leaf (>= 2)", ""),
            pkg("leaf", "1", "", ""),
        ];
        let err = run(&pkgs, &["top"]).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, DebianError::Unresolvable { chain, .. } if chain == &["top", "mid"])
        );
        assert_eq!(
            msg,
            "cannot satisfy `leaf (>= 2)` needed by top -> mid: leaf has only 1"
        );
        let err = run(&pkgs, &["nope"]).unwrap_err();
        assert!(matches!(err, DebianError::UnknownRoot { .. }), "{err}");
    }

    #[test]
    fn highest_version_across_sources() {
        let mut newer = pkg("x", "1.0-1+deb12u1", "", "");
        newer.source_uri = Arc::from("http://security.invalid/debian-security");
        let pkgs = vec![pkg("x", "1.0-1", "", ""), newer];
        let r = run(&pkgs, &["x"]).unwrap();
        assert_eq!(&*r[0].source_uri, "http://security.invalid/debian-security");
    }
}
