//! Identifiers that travel on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The prefix every server-assigned id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Builds an id from a server-side counter value.
            pub fn from_counter(counter: u64) -> Self {
                Self(format!("{}{counter:08x}", $prefix))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// A participant's session id, assigned by the server when it joins; unique per server run.
    /// A participant that rejoins gets a new one, while its identity stays the same.
    ParticipantId,
    "PA_"
);
string_id!(
    /// A published track's id, assigned by the server when the track is published.
    TrackSid,
    "TR_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_serialize_as_plain_strings() {
        let id = TrackSid::from_counter(42);
        assert_eq!(id.as_str(), "TR_0000002a");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"TR_0000002a\"");
    }
}
