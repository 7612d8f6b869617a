/// Which slice of a list to read: at most `limit` items after the `cursor` (an item id).
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Maximum number of items; clamped to `1..=PageRequest::MAX_LIMIT`.
    pub limit: Option<u32>,
    /// Id of the last item of the previous page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Items per page when the caller does not say.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page a caller may ask for.
    pub const MAX_LIMIT: u32 = 500;

    pub(crate) fn limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT).clamp(1, Self::MAX_LIMIT)
    }

    /// The cursor as a lower bound for `id > $n`; the empty string sorts before every id.
    pub(crate) fn after(&self) -> &str {
        self.cursor.as_deref().unwrap_or("")
    }

    /// Splits `limit + 1` fetched rows into one page and the cursor of the next, if any.
    pub(crate) fn finish<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> String) -> Page<T> {
        let limit = self.limit() as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(id)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// One page of a list, and the cursor to ask for the next one when more exist.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, in id order (which is creation order).
    pub items: Vec<T>,
    /// Pass as `cursor` to read the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
