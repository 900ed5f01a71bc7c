//! `Deserialize` for [`ClientMessage`], by hand.
//!
//! The derive for an internally tagged enum (`#[serde(tag = "type")]`) must
//! find `type` before it knows which fields to expect, so it first buffers
//! the whole object into serde's private `Content` tree (a `Vec` of
//! key-value pairs) and then deserializes the variant from that. Client
//! messages are small and flat: every field any of them has (`client`,
//! `token`, `id`, `text`) is a string or an optional string. So this visitor
//! walks the object once, keeps those four fields as borrowed strings where
//! the JSON has no escapes, skips everything else without building it, and
//! picks the variant at the end.
//!
//! # What it saves
//! It was written when every `say` went through it (about 5% of the
//! server's profile under `porter bench`). Since then
//! [`crate::decode_client_message`] takes the compact `say` every Porter
//! client sends apart by position (37 ns), so only the handshake's messages
//! and other `say`s reach a decoder. Measured again on those, both decoders
//! in the same run (`benches/client_decode.rs`: instructions per decode
//! under callgrind, and the range of criterion's medians over three runs on
//! a quiet 2-core VM), hand-written against derived:
//!
//! | payload                     | instructions  | time                 |
//! |-----------------------------|---------------|----------------------|
//! | `hello` with a token        | 2,553 / 3,008 | 173-175 / 236-311 ns |
//! | `answer`                    | 2,488 / 2,825 | 180-190 / 213-220 ns |
//! | `say`, `type` after `text`  | 1,836 / 2,120 | 136-141 / 155-160 ns |
//! | `say` with an escaped quote | 3,284 / 3,355 | 243-251 / 272-277 ns |
//!
//! That is 14-18% fewer instructions and 11-27% less time (middle runs):
//! no `Content` buffer to fill and walk again. For a `say` with escapes,
//! copying the unescaped string dominates: 2% fewer instructions, and the
//! time was 10% less in the quiet runs but more in a noisy one, so within
//! noise. By the rule "delete it if the difference is within noise" it
//! stays; what it buys now is a few tens of nanoseconds per handshake
//! message, not a share of the echo path.
//!
//! It accepts and refuses exactly what the derive did (the error texts may
//! differ): an unknown `type` is [`ClientMessage::Unknown`]; a missing or
//! non-string `type`, a second `type`, a missing required field, a field of
//! the wrong JSON type or given twice (among those the variant has) is an
//! error; fields the variant does not have are ignored, whatever their shape.
//! `crates/wire/tests/client_decode.rs` checks it against the derive.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{ClientMessage, Secret};

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `any`, like the derive: a non-object gets serde's own error.
        deserializer.deserialize_any(MessageVisitor)
    }
}

/// The keys that mean something in some client message.
enum Key {
    Type,
    Client,
    Token,
    Id,
    Text,
    To,
    Since,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "type" => Key::Type,
                    "client" => Key::Client,
                    "token" => Key::Token,
                    "id" => Key::Id,
                    "text" => Key::Text,
                    "to" => Key::To,
                    "since" => Key::Since,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A field's value, kept until `type` says whether it matters. Only a
/// string, an unsigned integer (`since`) or, for optional fields, null is
/// ever valid, so anything else is remembered by its kind alone, for the
/// error.
enum Value<'de> {
    Null,
    Str(Cow<'de, str>),
    /// A non-negative integer.
    Unsigned(u64),
    /// Neither: a boolean, a negative or fractional number, an object or an
    /// array.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value<'de>, E> {
        Ok(Value::Other("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value<'de>, E> {
        Ok(Value::Other("an integer"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Unsigned(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value<'de>, E> {
        Ok(Value::Other("a number"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Other("an object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Other("an array"))
    }
}

/// One of the fields: its first value, and whether it came again.
struct Slot<'de> {
    name: &'static str,
    value: Option<Value<'de>>,
    repeated: bool,
}

impl<'de> Slot<'de> {
    const fn new(name: &'static str) -> Self {
        Slot {
            name,
            value: None,
            repeated: false,
        }
    }

    fn fill<A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<(), A::Error> {
        let value = map.next_value::<Value<'de>>()?;
        if self.value.is_some() {
            self.repeated = true;
        } else {
            self.value = Some(value);
        }
        Ok(())
    }

    /// A required string field of the variant.
    fn required<E: de::Error>(self) -> Result<String, E> {
        match self.optional()? {
            Some(text) => Ok(text),
            None if self.value_was_null() => {
                Err(E::invalid_type(de::Unexpected::Unit, &"a string"))
            }
            None => Err(E::missing_field(self.name)),
        }
    }

    /// An optional string field of the variant (`null` is absent).
    fn optional<E: de::Error>(&self) -> Result<Option<String>, E> {
        if self.repeated {
            return Err(E::duplicate_field(self.name));
        }
        match &self.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(text)) => Ok(Some(text.clone().into_owned())),
            Some(Value::Unsigned(n)) => {
                Err(E::invalid_type(de::Unexpected::Unsigned(*n), &"a string"))
            }
            Some(Value::Other(what)) => {
                Err(E::invalid_type(de::Unexpected::Other(what), &"a string"))
            }
        }
    }

    /// An optional unsigned integer field of the variant (`null` is absent).
    fn optional_u64<E: de::Error>(&self) -> Result<Option<u64>, E> {
        if self.repeated {
            return Err(E::duplicate_field(self.name));
        }
        match &self.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Unsigned(n)) => Ok(Some(*n)),
            Some(Value::Str(text)) => Err(E::invalid_type(
                de::Unexpected::Str(text),
                &"an unsigned integer",
            )),
            Some(Value::Other(what)) => Err(E::invalid_type(
                de::Unexpected::Other(what),
                &"an unsigned integer",
            )),
        }
    }

    fn value_was_null(&self) -> bool {
        matches!(self.value, Some(Value::Null))
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = ClientMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a string field `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClientMessage, A::Error> {
        let mut kind: Option<Cow<'de, str>> = None;
        let mut client = Slot::new("client");
        let mut token = Slot::new("token");
        let mut id = Slot::new("id");
        let mut text = Slot::new("text");
        let mut to = Slot::new("to");
        let mut since = Slot::new("since");
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => {
                    if kind.is_some() {
                        return Err(de::Error::duplicate_field("type"));
                    }
                    kind = Some(map.next_value_seed(TypeSeed)?);
                }
                Key::Client => client.fill(&mut map)?,
                Key::Token => token.fill(&mut map)?,
                Key::Id => id.fill(&mut map)?,
                Key::Text => text.fill(&mut map)?,
                Key::To => to.fill(&mut map)?,
                Key::Since => since.fill(&mut map)?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(kind) = kind else {
            return Err(de::Error::missing_field("type"));
        };
        Ok(match kind.as_ref() {
            "hello" => ClientMessage::Hello {
                client: client.optional()?,
                token: token.optional()?.map(Secret),
                since: since.optional_u64()?,
            },
            "answer" => ClientMessage::Answer {
                id: id.required()?,
                text: Secret(text.required()?),
            },
            "say" => ClientMessage::Say {
                text: text.required()?,
                to: to.optional()?,
            },
            "logout" => ClientMessage::Logout,
            "bye" => ClientMessage::Bye,
            "who" => ClientMessage::Who,
            _ => ClientMessage::Unknown,
        })
    }
}

/// The value of `type`: a string, and only a string (the derive took it as
/// a variant name through `deserialize_identifier`, which JSON gives
/// strings only).
struct TypeSeed;

impl<'de> de::DeserializeSeed<'de> for TypeSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for TypeSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message type name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}
