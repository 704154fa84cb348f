//! A D-Bus dict (`a{sV}`) that keeps its entries in wire order.
//!
//! `HashMap` loses the order, but some replies promise one (the controller's fleet `ListUnits`
//! lists nodes in configuration order) and some readers depend on it (bluechictl reacts to the
//! *first* key of a `PropertiesChanged` dict).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use zvariant::{Signature, Type};

#[derive(Debug, Clone, PartialEq)]
pub struct OrderedDict<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedDict<V> {
    fn default() -> Self {
        OrderedDict(Vec::new())
    }
}

impl<V: Type> Type for OrderedDict<V> {
    const SIGNATURE: &'static Signature = &Signature::static_dict(String::SIGNATURE, V::SIGNATURE);
}

impl<V: Serialize> Serialize for OrderedDict<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

struct OrderedVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
    type Value = OrderedDict<V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a dict with string keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = access.next_entry::<String, V>()? {
            entries.push((k, v));
        }
        Ok(OrderedDict(entries))
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedDict<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OrderedVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvariant::serialized::Context;
    use zvariant::{to_bytes, LE};

    #[test]
    fn round_trip_keeps_order_and_signature() {
        let d = OrderedDict(vec![
            ("zeta".to_string(), vec![1u32]),
            ("alpha".to_string(), vec![2, 3]),
            ("mid".to_string(), vec![]),
        ]);
        assert_eq!(OrderedDict::<Vec<u32>>::SIGNATURE.to_string(), "a{sau}");
        let ctxt = Context::new_dbus(LE, 0);
        let bytes = to_bytes(ctxt, &d).unwrap();
        let (back, _): (OrderedDict<Vec<u32>>, _) = bytes.deserialize().unwrap();
        assert_eq!(back, d);
    }
}
