//! Label sets: sorted, unique `name="value"` pairs identifying a series.

use std::fmt;

use xxhash_rust::xxh3::Xxh3;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// Separator of the canonical byte encoding: 0xff never occurs in UTF-8 text.
const SEP: u8 = 0xff;

/// One label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set, sorted by name with unique names and no empty values (an empty value means
/// the label is absent, as in Prometheus).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a label set from pairs in any order; later duplicates win, empty values are
    /// dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        v.reverse();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.dedup_by(|a, b| a.name == b.name);
        v.retain(|l| !l.value.is_empty());
        Self(v)
    }

    /// Wraps labels that the caller has already validated as sorted and unique.
    pub fn from_sorted(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
        Self(v)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// The value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => &self.0[i].value,
            Err(_) => "",
        }
    }

    /// The metric name, or "".
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    /// Sets `name` to `value` (removes it when `value` is empty).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// This set without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// Only the labels named in `names` (`by` grouping).
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// Without the labels named in `names` and without the metric name (`without` grouping).
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| l.name != METRIC_NAME && !names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// A stable 64-bit hash of the set (xxh3 over the canonical encoding).
    pub fn fingerprint(&self) -> u64 {
        let mut h = Xxh3::new();
        for l in &self.0 {
            h.update(l.name.as_bytes());
            h.update(&[SEP]);
            h.update(l.value.as_bytes());
            h.update(&[SEP]);
        }
        h.digest()
    }

    /// The canonical byte encoding: `name 0xff value 0xff ...`; equal sets encode equally.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.0
                .iter()
                .map(|l| l.name.len() + l.value.len() + 2)
                .sum(),
        );
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for l in &self.0 {
            out.extend_from_slice(l.name.as_bytes());
            out.push(SEP);
            out.extend_from_slice(l.value.as_bytes());
            out.push(SEP);
        }
    }

    /// Decodes [`Labels::encode`]'s output; `None` when `b` is not such an encoding.
    pub fn decode(b: &[u8]) -> Option<Labels> {
        if b.is_empty() {
            return Some(Labels::default());
        }
        if *b.last()? != SEP {
            return None;
        }
        // Every label ends in two separators, the last one included.
        let seps = b.iter().filter(|c| **c == SEP).count();
        if !seps.is_multiple_of(2) {
            return None;
        }
        let mut v = Vec::with_capacity(seps / 2);
        let mut parts = b[..b.len() - 1].split(|c| *c == SEP);
        while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
            v.push(Label {
                name: std::str::from_utf8(name).ok()?.to_owned(),
                value: std::str::from_utf8(value).ok()?.to_owned(),
            });
        }
        Some(Labels(v))
    }
}

impl fmt::Display for Labels {
    /// Prometheus' notation: `{a="1", b="2"}`, values escaped as Go's `%q` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '"' => f.write_str("\\\"")?,
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl FromIterator<Label> for Labels {
    fn from_iter<T: IntoIterator<Item = Label>>(iter: T) -> Self {
        Labels::from_pairs(iter.into_iter().map(|l| (l.name, l.value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_roundtrip_and_order() {
        let l = Labels::from_pairs([("job", "api"), ("__name__", "up"), ("empty", "")]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.as_slice()[0].name, "__name__");
        assert_eq!(Labels::decode(&l.encode()), Some(l.clone()));
        assert_eq!(Labels::decode(&[]), Some(Labels::default()));
        assert_eq!(Labels::decode(b"a\xff"), None);
        assert_eq!(Labels::decode(b"a\xffb\xffc\xff"), None);
        assert_eq!(Labels::decode(b"a\xffb"), None);
        assert_eq!(Labels::decode(b"a\xff\xc3\x28\xff"), None);
        assert_eq!(
            Labels::decode(b"a\xff\xff"),
            Some(Labels(vec![Label::new("a", "")]))
        );
        assert_eq!(l.to_string(), r#"{__name__="up", job="api"}"#);
    }

    #[test]
    fn set_get_group() {
        let mut l = Labels::from_pairs([("b", "2"), ("a", "1")]);
        l.set("c", "3");
        l.set("a", "");
        assert_eq!(l.get("a"), "");
        assert_eq!(l.get("c"), "3");
        l.set("__name__", "m");
        assert_eq!(l.keep(&["b".into()]).to_string(), r#"{b="2"}"#);
        assert_eq!(l.drop_names(&["b".into()]).to_string(), r#"{c="3"}"#);
        assert_ne!(l.fingerprint(), l.without_metric_name().fingerprint());
    }
}
