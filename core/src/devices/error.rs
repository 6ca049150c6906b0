//! What can go wrong when listing or opening a device.

use super::DeviceKind;

/// A device could not be listed or opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// There is no such device (or no device of this kind at all when `id` is `default`).
    #[error("no {kind} {id:?}{}", detail_suffix(.detail))]
    NotFound {
        /// What kind of device was asked for.
        kind: DeviceKind,
        /// The id asked for (`default` when none was given).
        id: String,
        /// Why, when the backend says more (for example that `$DISPLAY` is unset).
        detail: String,
    },
    /// The device exists but another program (or another stream) holds it.
    #[error("{kind} {id:?} is busy{}", detail_suffix(.detail))]
    Busy {
        /// What kind of device.
        kind: DeviceKind,
        /// Which one.
        id: String,
        /// The backend's words.
        detail: String,
    },
    /// The operating system refused access (device permissions, privacy settings).
    #[error("not permitted to use {kind} {id:?}{}", detail_suffix(.detail))]
    PermissionDenied {
        /// What kind of device.
        kind: DeviceKind,
        /// Which one.
        id: String,
        /// The backend's words.
        detail: String,
    },
    /// The device offers no format Aula can use.
    #[error("{kind} {id:?} offers no usable format: {detail}")]
    UnsupportedFormat {
        /// What kind of device.
        kind: DeviceKind,
        /// Which one.
        id: String,
        /// What it offers, or what is missing.
        detail: String,
    },
    /// This build has no backend for this kind of device on this platform.
    #[error("{kind} support is not built in ({detail})")]
    NotBuilt {
        /// What kind of device.
        kind: DeviceKind,
        /// Which feature or platform is missing.
        detail: String,
    },
    /// The backend failed in a way not listed above.
    #[error("{kind} backend failed: {detail}")]
    Backend {
        /// What kind of device.
        kind: DeviceKind,
        /// The backend's words.
        detail: String,
    },
    /// A request is out of range (a zero frame rate, an id of the wrong shape).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

// The helpers below are for the backends; a build with none of them uses only `kind`.
#[cfg_attr(
    not(any(feature = "camera", feature = "audio-devices", feature = "screen")),
    allow(dead_code)
)]
impl DeviceError {
    /// The kind of device the error is about, when it is about one.
    pub fn kind(&self) -> Option<DeviceKind> {
        match self {
            DeviceError::NotFound { kind, .. }
            | DeviceError::Busy { kind, .. }
            | DeviceError::PermissionDenied { kind, .. }
            | DeviceError::UnsupportedFormat { kind, .. }
            | DeviceError::NotBuilt { kind, .. }
            | DeviceError::Backend { kind, .. } => Some(*kind),
            DeviceError::InvalidArgument(_) => None,
        }
    }

    pub(crate) fn not_found(kind: DeviceKind, id: &str, detail: impl Into<String>) -> Self {
        DeviceError::NotFound {
            kind,
            id: id.to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn backend(kind: DeviceKind, detail: impl std::fmt::Display) -> Self {
        DeviceError::Backend {
            kind,
            detail: detail.to_string(),
        }
    }

    /// Sorts an I/O failure on a device into busy, not permitted, missing or other.
    #[cfg_attr(not(feature = "camera"), allow(dead_code))]
    pub(crate) fn from_io(kind: DeviceKind, id: &str, err: &std::io::Error) -> Self {
        let detail = err.to_string();
        let id = id.to_owned();
        match err.kind() {
            std::io::ErrorKind::NotFound => DeviceError::NotFound { kind, id, detail },
            std::io::ErrorKind::PermissionDenied => {
                DeviceError::PermissionDenied { kind, id, detail }
            }
            std::io::ErrorKind::ResourceBusy => DeviceError::Busy { kind, id, detail },
            _ => DeviceError::Backend {
                kind,
                detail: format!("{id}: {detail}"),
            },
        }
    }

    /// Sorts a backend's error text into busy, not permitted, missing or other, for backends
    /// that only report text.
    #[cfg_attr(
        not(any(feature = "camera", feature = "audio-devices")),
        allow(dead_code)
    )]
    pub(crate) fn from_text(kind: DeviceKind, id: &str, text: &str) -> Self {
        let lower = text.to_ascii_lowercase();
        let id = id.to_owned();
        let detail = text.to_owned();
        if lower.contains("busy") || lower.contains("os error 16") {
            DeviceError::Busy { kind, id, detail }
        } else if lower.contains("permission")
            || lower.contains("not permitted")
            || lower.contains("denied")
            || lower.contains("os error 13")
            || lower.contains("os error 1)")
        {
            DeviceError::PermissionDenied { kind, id, detail }
        } else if lower.contains("no such")
            || lower.contains("not found")
            || lower.contains("os error 2)")
            || lower.contains("os error 19")
        {
            DeviceError::NotFound { kind, id, detail }
        } else {
            DeviceError::Backend {
                kind,
                detail: format!("{id}: {text}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_texts_are_sorted_into_typed_errors() {
        let busy = DeviceError::from_text(
            DeviceKind::Camera,
            "0",
            "Could not open device stream: Device or resource busy (os error 16)",
        );
        assert!(matches!(busy, DeviceError::Busy { .. }), "{busy:?}");
        let denied = DeviceError::from_text(
            DeviceKind::Camera,
            "0",
            "Could not open device 0: Permission denied (os error 13)",
        );
        assert!(matches!(denied, DeviceError::PermissionDenied { .. }));
        let missing = DeviceError::from_text(
            DeviceKind::Camera,
            "3",
            "No such file or directory (os error 2)",
        );
        assert!(matches!(missing, DeviceError::NotFound { .. }));
        let other = DeviceError::from_text(DeviceKind::Microphone, "x", "the moon is full");
        assert!(matches!(other, DeviceError::Backend { .. }));
        assert_eq!(other.kind(), Some(DeviceKind::Microphone));
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(matches!(
            DeviceError::from_io(DeviceKind::Camera, "/dev/video0", &io),
            DeviceError::PermissionDenied { .. }
        ));
    }

    #[test]
    fn messages_name_the_device() {
        let err = DeviceError::not_found(DeviceKind::Screen, "default", "$DISPLAY is unset");
        assert_eq!(err.to_string(), "no screen \"default\": $DISPLAY is unset");
    }
}
