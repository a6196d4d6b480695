//! Which part of its check's run one instance performs (`host.part`:
//! whole, one shard, or the merge) and the claims a sharded run's shards
//! share (`host.claim`), as the sandbox holds them. Running the parts is
//! the business of `shards.rs`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::bindings::host::RunPart;
use crate::limits;

/// The keys claimed so far in one sharded run, by their hashes.
#[derive(Default)]
pub(crate) struct Claims {
    taken: Mutex<HashSet<u128>>,
}

/// Which part of a run an instance performs, and its run's claims.
pub(crate) struct Share {
    pub(crate) part: RunPart,
    pub(crate) claims: Option<Arc<Claims>>,
}

impl Share {
    /// A whole run: every claim is granted.
    pub(crate) fn whole() -> Share {
        Share {
            part: RunPart::Whole,
            claims: None,
        }
    }

    /// `host.claim`: whether this shard takes `key`.
    pub(crate) fn claim(&self, key: &str) -> bool {
        let (RunPart::Shard(shard), Some(claims)) = (&self.part, &self.claims) else {
            return true;
        };
        let digest = Sha256::digest(key.as_bytes());
        let hash = u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"));
        let mut taken = claims.taken.lock().unwrap_or_else(|e| e.into_inner());
        if taken.len() < limits::MAX_CLAIMS {
            return taken.insert(hash);
        }
        if taken.contains(&hash) {
            return false;
        }
        hash % u128::from(shard.count.max(1)) == u128::from(shard.index)
    }
}
