/// Reorders lists so that items with the same key stand together: the groups in the order of their
/// first members, each group's members in their own order. A counting sort, linear in the list's
/// length however many groups it holds (a busy tick can hold thousands of writes), whose buffers are
/// kept from one call to the next, so that a steady load allocates nothing.
struct StableGrouping<Item, Key: Hashable> {
    /// Each key's group, numbered by first appearance.
    private var groups: [Key: Int] = [:]
    /// Per group: its size, then where its next member goes.
    private var slots: [Int] = []
    /// Per item: its group, so that each key is hashed once.
    private var memberships: [Int] = []
    private var reordered: [Item] = []

    /// Groups `items` by `key`.
    mutating func group(_ items: inout [Item], by key: (Item) -> Key) {
        guard items.count > 2 else { return }
        defer {
            self.groups.removeAll(keepingCapacity: true)
            self.slots.removeAll(keepingCapacity: true)
            self.memberships.removeAll(keepingCapacity: true)
            self.reordered.removeAll(keepingCapacity: true)
        }
        for item in items {
            let itemKey = key(item)
            if let group = self.groups[itemKey] {
                self.slots[group] += 1
                self.memberships.append(group)
            } else {
                self.groups[itemKey] = self.slots.count
                self.memberships.append(self.slots.count)
                self.slots.append(1)
            }
        }
        // One group, or as many as items: already in order.
        guard self.slots.count > 1, self.slots.count < items.count else { return }
        var start = 0
        for group in self.slots.indices {
            let size = self.slots[group]
            self.slots[group] = start
            start += size
        }
        self.reordered.append(contentsOf: items)
        for (item, group) in zip(items, self.memberships) {
            self.reordered[self.slots[group]] = item
            self.slots[group] += 1
        }
        swap(&items, &self.reordered)
    }
}
