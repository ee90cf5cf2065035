//! One watch event of one kind -> what the [`Index`](super::Index) must do.
//!
//! A relist arrives as `Init`, `InitApply` per object, `InitDone`; it is
//! buffered and handed over as one [`Step::Reset`] with the complete list,
//! so objects deleted while the watch was down are deleted from the index
//! too. Never a series of applies: deletes would get lost.

use kube::runtime::watcher::{self, Event};
use tracing::{info, warn};

/// What one watch event asks of the index.
#[derive(Debug, PartialEq)]
pub enum Step<K> {
    /// An object was added or changed.
    Apply(K),
    /// An object was deleted.
    Delete(K),
    /// A (re)list completed: this is every object of the kind.
    Reset(Vec<K>),
    /// Nothing yet (a relist in progress) or nothing at all (a watch error,
    /// which the watcher retries with backoff by itself).
    Wait,
}

/// Turns `event` of `kind` into a [`Step`], buffering a relist in `relist`
/// (the objects listed since the last `Init`). Errors are logged.
pub fn step<K>(
    relist: &mut Option<Vec<K>>,
    kind: &'static str,
    event: watcher::Result<Event<K>>,
) -> Step<K> {
    match event {
        Ok(Event::Apply(o)) => Step::Apply(o),
        Ok(Event::Delete(o)) => Step::Delete(o),
        Ok(Event::Init) => {
            *relist = Some(Vec::new());
            Step::Wait
        }
        Ok(Event::InitApply(o)) => {
            relist.get_or_insert_with(Vec::new).push(o);
            Step::Wait
        }
        Ok(Event::InitDone) => {
            let list = relist.take().unwrap_or_default();
            info!(kind, count = list.len(), "listed");
            Step::Reset(list)
        }
        Err(err) => {
            warn!(kind, error = %err, "watch failed; retrying with backoff");
            Step::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_reaches_the_index_as_one_reset_with_every_object() {
        let mut relist = None;
        assert_eq!(step(&mut relist, "T", Ok(Event::Init)), Step::Wait);
        assert_eq!(step(&mut relist, "T", Ok(Event::InitApply(1))), Step::Wait);
        assert_eq!(step(&mut relist, "T", Ok(Event::InitApply(2))), Step::Wait);
        assert_eq!(
            step(&mut relist, "T", Ok(Event::InitDone)),
            Step::Reset(vec![1, 2])
        );
        assert_eq!(relist, None);
    }

    #[test]
    fn an_empty_relist_is_a_reset_to_nothing() {
        let mut relist: Option<Vec<u8>> = None;
        assert_eq!(step(&mut relist, "T", Ok(Event::Init)), Step::Wait);
        assert_eq!(
            step(&mut relist, "T", Ok(Event::InitDone)),
            Step::Reset(vec![])
        );
    }

    #[test]
    fn a_new_init_drops_the_objects_of_an_interrupted_relist() {
        let mut relist = None;
        step(&mut relist, "T", Ok(Event::Init));
        step(&mut relist, "T", Ok(Event::InitApply(1)));
        step(&mut relist, "T", Ok(Event::Init));
        step(&mut relist, "T", Ok(Event::InitApply(2)));
        assert_eq!(
            step(&mut relist, "T", Ok(Event::InitDone)),
            Step::Reset(vec![2])
        );
    }

    #[test]
    fn applies_and_deletes_pass_straight_through() {
        let mut relist = None;
        assert_eq!(step(&mut relist, "T", Ok(Event::Apply(1))), Step::Apply(1));
        assert_eq!(
            step(&mut relist, "T", Ok(Event::Delete(1))),
            Step::Delete(1)
        );
    }
}
