//! The buffers body blocks are read into: reused from one read to the next (no allocation, no
//! zeroing, no page faults per read) and bounded in total, so the memory disk readers hold
//! stays bounded whatever the object size and however many read at once: a read waits for
//! room rather than allocate past [`BUDGET`].

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of block buffers in use at once (by reads, and by responses still sending them).
pub const BUDGET: usize = 256 << 20;
/// Size classes: a buffer is the smallest class that holds the block.
const CLASSES: [usize; 4] = [16 << 10, 64 << 10, 256 << 10, 1 << 20];
/// Bytes of idle buffers kept per class for the next reads.
const IDLE_PER_CLASS: usize = 8 << 20;
/// The budget is counted in these units (a semaphore counts `u32` permits).
const UNIT: usize = 4 << 10;

/// The pool (one per disk tier).
pub struct Buffers {
    idle: [Mutex<Vec<Box<[u8]>>>; CLASSES.len()],
    budget: Arc<Semaphore>,
}

impl Default for Buffers {
    fn default() -> Buffers {
        Buffers {
            idle: Default::default(),
            budget: Arc::new(Semaphore::new(BUDGET / UNIT)),
        }
    }
}

/// A buffer of `len` bytes to read a block into; back to the pool when the last `Bytes` made
/// of it is dropped.
pub struct Block {
    data: Box<[u8]>,
    len: usize,
    class: Option<usize>,
    pool: Arc<Buffers>,
    _permit: OwnedSemaphorePermit,
}

impl Buffers {
    /// A buffer of `len` bytes (its contents are whatever the last read left), once the
    /// budget has room for it.
    pub async fn get(self: &Arc<Self>, len: usize) -> Block {
        let class = CLASSES.iter().position(|&size| size >= len);
        let size = class.map_or(len, |c| CLASSES[c]);
        let units = u32::try_from(size.div_ceil(UNIT).min(BUDGET / UNIT)).unwrap_or(u32::MAX);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the pool never closes its semaphore");
        let reused = class.and_then(|c| lock(&self.idle[c]).pop());
        let data = reused.unwrap_or_else(|| vec![0u8; size].into_boxed_slice());
        Block {
            data,
            len,
            class,
            pool: self.clone(),
            _permit: permit,
        }
    }
}

impl Block {
    /// The bytes to read into.
    pub fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }

    /// The block as shared bytes (no copy).
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let Some(class) = self.class else { return };
        let mut idle = lock(&self.pool.idle[class]);
        if (idle.len() + 1) * CLASSES[class] <= IDLE_PER_CLASS {
            idle.push(std::mem::take(&mut self.data));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_are_reused_and_the_budget_bounds_them() {
        let pool = Arc::new(Buffers::default());
        let mut first = pool.get(100_000).await;
        first.as_mut()[0] = 7;
        assert_eq!(first.as_ref().len(), 100_000);
        let ptr = first.as_ref().as_ptr();
        let bytes = first.freeze();
        drop(bytes.slice(1..10));
        drop(bytes);
        let again = pool.get(200_000).await;
        assert_eq!(
            again.as_ref().as_ptr(),
            ptr,
            "the idle buffer of the class is reused"
        );
        drop(again);

        // The whole budget held: the next read waits until a buffer is given back.
        let held: Vec<Block> =
            futures::future::join_all((0..BUDGET / (1 << 20)).map(|_| pool.get(1 << 20))).await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), pool.get(1 << 20));
        assert!(waiting.await.is_err(), "over budget, a read waits");
        drop(held);
        let got = tokio::time::timeout(std::time::Duration::from_millis(50), pool.get(1 << 20));
        assert!(got.await.is_ok());
    }
}
