//! Lists whose bad items are reported at the item, not at the list.
//!
//! `toml` attaches a position to an error at the nearest table value, and for an
//! item rejected by its own `TryFrom` inside an array that is the whole array. So
//! lists of scalar values (and of disk selectors) deserialize through [`list`], which
//! prefixes an item's error with its index (`[2] ...`); [`crate::parse`] strips the
//! prefix again ([`split_index`]) and narrows the position to that item.
//!
//! Not for lists of tables: their errors already carry precise positions, which
//! re-raising the error here would throw away.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

/// `deserialize_with` for `Vec<T>` that tags an item's error with its index.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ListVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            loop {
                match seq.next_element::<T>() {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) => return Ok(items),
                    Err(e) => {
                        // Item errors here carry no position of their own (that is
                        // why this exists), and so no key trail: one line.
                        let text = e.to_string();
                        let first = text.lines().next().unwrap_or_default();
                        return Err(A::Error::custom(format!("[{}] {first}", items.len())));
                    }
                }
            }
        }
    }

    d.deserialize_seq(ListVisitor(PhantomData))
}

/// Splits the `[i] ` prefixes [`list`] added, outermost first, from a message.
pub(crate) fn split_index(mut message: &str) -> (Vec<usize>, &str) {
    let mut indexes = Vec::new();
    while let Some(rest) = message.strip_prefix('[') {
        let Some((n, tail)) = rest.split_once("] ") else {
            break;
        };
        let Ok(n) = n.parse() else { break };
        indexes.push(n);
        message = tail;
    }
    (indexes, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prefixes() {
        assert_eq!(split_index("[0] [12] bad"), (vec![0, 12], "bad"));
        assert_eq!(split_index("[x] bad"), (vec![], "[x] bad"));
        assert_eq!(split_index("plain"), (vec![], "plain"));
    }
}
