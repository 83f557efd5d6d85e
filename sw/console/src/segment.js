// The visual segment builder's model, and the API filter it stands for (pure: no DOM).
//
// A segment is "all" or "any" of a list of conditions on tags (of the subscription or its
// profile) and profile attributes: exactly what the API's `audience.segment` filter can say.

export const TAG_OPS = [
  ['is', 'is'],
  ['is_not', 'is not'],
  ['exists', 'is set'],
  ['missing', 'is not set'],
];
export const ATTRIBUTE_OPS = [
  ['eq', '='],
  ['ne', '≠'],
  ['lt', '<'],
  ['lte', '≤'],
  ['gt', '>'],
  ['gte', '≥'],
];

export const emptyCondition = () => ({ kind: 'tag', key: '', op: 'is', value: '', type: 'text' });
export const emptySegment = () => ({ match: 'all', conditions: [emptyCondition()] });

/** Whether the condition's operator takes a value. */
export const needsValue = (condition) => !(condition.kind === 'tag' && (condition.op === 'exists' || condition.op === 'missing'));

function typed(condition) {
  if (condition.type === 'boolean') return condition.value === 'true';
  if (condition.type === 'number') {
    const number = Number(condition.value);
    // Left as text when it is not a number: the API then says what is wrong.
    return condition.value.trim() !== '' && Number.isFinite(number) ? number : condition.value;
  }
  return condition.value;
}

function conditionFilter(condition) {
  const key = condition.key.trim();
  if (condition.kind === 'attribute') {
    return { attribute: { key, op: condition.op, value: typed(condition) } };
  }
  switch (condition.op) {
    case 'exists': return { tag: { key } };
    case 'missing': return { not: { tag: { key } } };
    case 'is_not': return { not: { tag: { key, value: condition.value } } };
    default: return { tag: { key, value: condition.value } };
  }
}

/** The API filter for a builder model. */
export function toFilter(segment) {
  const parts = segment.conditions.map(conditionFilter);
  if (parts.length === 1) return parts[0];
  return { [segment.match === 'any' ? 'any' : 'all']: parts };
}
