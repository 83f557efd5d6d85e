//! When the soft prompt may show. A pure function of what the widget knows about the visit, so
//! that every rule (conditions, never nag after a "no", respect a denied permission, the iOS
//! home-screen case) is decided in one place and tested without a browser.

/**
 * @param {object} state
 * @param {"supported"|"ios-install"|"unsupported"} state.platform from detectPlatform
 * @param {"default"|"granted"|"denied"} [state.permission] `Notification.permission`
 * @param {boolean} [state.subscribed] a push subscription exists for this app
 * @param {number} state.pageViews page views so far, this one included
 * @param {number} state.secondsOnSite seconds since the visit's first page
 * @param {boolean} state.interacted the visitor clicked, tapped or typed on this page
 * @param {number|null} state.declinedAt when the visitor last said "no" (ms since epoch)
 * @param {boolean} [state.optedOut] the visitor unsubscribed through the site (`Aviso.unsubscribe`)
 * @param {number} state.now ms since epoch
 * @param {object} config parsed widget config (pageViews, seconds, afterInteraction, cooldownMs)
 * @param {boolean} [force] asked for by the site (`Aviso.prompt()`): skip conditions and cool-down
 * @returns one of
 *   `{action: "none", reason}` nothing now nor later on this page;
 *   `{action: "subscribe"}` permission is granted but there is no subscription: subscribe quietly;
 *   `{action: "wait", seconds, interaction}` ask again after `seconds` and/or the next interaction;
 *   `{action: "prompt", kind: "push" | "ios-install"}` show the soft prompt of that kind.
 */
export function decidePrompt(state, config, force = false) {
  if (state.platform === 'unsupported') return { action: 'none', reason: 'unsupported' };
  const ios = state.platform === 'ios-install';
  if (!ios && state.permission === 'denied') return { action: 'none', reason: 'denied' };
  if (!ios && state.subscribed) return { action: 'none', reason: 'subscribed' };
  if (state.optedOut && !force) return { action: 'none', reason: 'unsubscribed' };
  if (!ios && state.permission === 'granted') return { action: 'subscribe' };
  const kind = ios ? 'ios-install' : 'push';
  if (force) return { action: 'prompt', kind };
  if (state.declinedAt != null && state.now - state.declinedAt < config.cooldownMs) {
    return { action: 'none', reason: 'declined' };
  }
  if (state.pageViews < config.pageViews) return { action: 'none', reason: 'page-views' };
  const seconds = Math.max(0, config.seconds - state.secondsOnSite);
  const interaction = config.afterInteraction && !state.interacted;
  if (seconds > 0 || interaction) return { action: 'wait', seconds, interaction };
  return { action: 'prompt', kind };
}
