//! Tags as the site sets them (`Aviso.setTags`): checked, turned into the strings the public API
//! takes, and kept locally so that a visitor who subscribes later (or whose subscription the
//! browser renews) reaches the server with the tags the site already gave.

/**
 * The changes the site asked for, as `{key: string | null}` (`null` removes a tag). Numbers and
 * booleans become strings; anything else is a mistake the TypeError names.
 */
export function normalizeTags(tags) {
  if (!tags || typeof tags !== 'object' || Array.isArray(tags)) {
    throw new TypeError('Aviso.setTags needs an object, like {plan: "pro"}');
  }
  const changes = {};
  for (const [key, value] of Object.entries(tags)) {
    if (value === null || value === undefined) changes[key] = null;
    else if (['string', 'number', 'boolean'].includes(typeof value)) changes[key] = String(value);
    else throw new TypeError(`Aviso.setTags: tag "${key}" must be a string, number, boolean or null (removes it)`);
  }
  return changes;
}

/** The tags after applying `changes` to `current`: a new object without the removed tags. */
export function mergeTags(current, changes) {
  const merged = { ...current };
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

/** Whether applying `changes` to `current` would change nothing (so there is nothing to send). */
export function changesNothing(current, changes) {
  return Object.entries(changes).every(([key, value]) => (value === null ? !Object.hasOwn(current, key) : current[key] === value));
}
