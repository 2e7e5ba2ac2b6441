//! PKCS#11 errors for a person ("C_Sign: CKR_KEY_HANDLE_INVALID") and their classes (session lost, PIN refused).

use cryptoki::error::{Error as CkError, RvError};

use crate::error::ProviderError;

/// "C_Sign: CKR_KEY_TYPE_INCONSISTENT", from a cryptoki error.
pub(super) fn ck_message(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("C_{function:?}: CKR_{}", screaming(&format!("{rv:?}"))),
        other => other.to_string(),
    }
}

fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

pub(super) fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// The session (or the whole module) went away: reconnect and retry once.
pub(super) fn is_session_lost(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::CryptokiNotInitialized
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
        )
    )
}

/// The token itself is failing: try the next token.
pub(super) fn is_token_failure(e: &CkError) -> bool {
    is_session_lost(e)
        || matches!(
            rv(e),
            Some(
                RvError::DeviceError
                    | RvError::DeviceMemory
                    | RvError::GeneralError
                    | RvError::SlotIdInvalid
                    | RvError::TokenNotRecognized
            )
        )
}

/// The token refused the PIN itself. Final: no retry, no failover, and no second C_Login in
/// this process, since every further try with the same PIN moves the token towards lockout.
pub(super) fn is_pin_refused(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::PinIncorrect
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::PinInvalid
                | RvError::PinLenRange
        )
    )
}

/// Why one attempt on one token failed.
pub(super) enum OpError {
    Ck(CkError),
    /// A refusal that another token would not change (bad key attributes, bad input).
    Refused(ProviderError),
    /// The key is not on this token; another token may have it.
    Missing(String),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}
