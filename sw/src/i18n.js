//! The soft prompt's texts: built-in Spanish, English, French, Portuguese and German, chosen from
//! the browser's languages, with a site owner's overrides on top.

export const BUILT_IN = {
  en: {
    title: 'Stay in the loop',
    body: 'Get notified when there is news. You can turn it off at any time.',
    allow: 'Allow',
    later: 'Not now',
    bell: 'Turn on notifications',
    iosTitle: 'Get notifications on this device',
    iosBody: 'Tap Share, then “Add to Home Screen”, and open the site from there.',
    ok: 'Got it',
  },
  es: {
    title: 'No te pierdas nada',
    body: 'Te avisamos cuando haya novedades. Puedes desactivarlo cuando quieras.',
    allow: 'Permitir',
    later: 'Ahora no',
    bell: 'Activar notificaciones',
    iosTitle: 'Recibe notificaciones en este dispositivo',
    iosBody: 'Toca Compartir, luego «Añadir a pantalla de inicio», y abre el sitio desde allí.',
    ok: 'Entendido',
  },
  fr: {
    title: 'Restez informé',
    body: 'Soyez averti des nouveautés. Vous pouvez désactiver cela à tout moment.',
    allow: 'Autoriser',
    later: 'Plus tard',
    bell: 'Activer les notifications',
    iosTitle: 'Recevez des notifications sur cet appareil',
    iosBody: 'Touchez Partager, puis « Sur l’écran d’accueil », et ouvrez le site depuis là.',
    ok: 'Compris',
  },
  pt: {
    title: 'Fique por dentro',
    body: 'Receba um aviso quando houver novidades. Pode desativar a qualquer momento.',
    allow: 'Permitir',
    later: 'Agora não',
    bell: 'Ativar notificações',
    iosTitle: 'Receba notificações neste dispositivo',
    iosBody: 'Toque em Partilhar, depois em “Adicionar ao ecrã principal”, e abra o site a partir daí.',
    ok: 'Entendi',
  },
  de: {
    title: 'Nichts mehr verpassen',
    body: 'Wir melden uns, wenn es Neuigkeiten gibt. Jederzeit abschaltbar.',
    allow: 'Erlauben',
    later: 'Nicht jetzt',
    bell: 'Benachrichtigungen einschalten',
    iosTitle: 'Benachrichtigungen auf diesem Gerät erhalten',
    iosBody: 'Tippen Sie auf Teilen, dann „Zum Home-Bildschirm“, und öffnen Sie die Seite von dort.',
    ok: 'Verstanden',
  },
};

/**
 * The first of the visitor's languages (`navigator.languages`, most preferred first) that has
 * built-in texts, by primary subtag ("pt-BR" → "pt"); English when none has.
 */
export function pickLanguage(preferred) {
  for (const tag of preferred || []) {
    const primary = String(tag).toLowerCase().split(/[-_]/)[0];
    if (BUILT_IN[primary]) return primary;
  }
  return 'en';
}

/**
 * The texts to show: the built-in ones for `language`, then the plain strings of `overrides`
 * (for every language), then `overrides[language]` (for that language only), so a site can say
 * `{title: "…"}` or `{fr: {title: "…"}, de: {title: "…"}}`.
 */
export function resolveTexts(language, overrides) {
  const texts = { ...(BUILT_IN[language] || BUILT_IN.en) };
  if (!overrides || typeof overrides !== 'object') return texts;
  for (const [key, value] of Object.entries(overrides)) {
    if (typeof value === 'string') texts[key] = value;
  }
  const forLanguage = overrides[language];
  if (forLanguage && typeof forLanguage === 'object') {
    for (const [key, value] of Object.entries(forLanguage)) {
      if (typeof value === 'string') texts[key] = value;
    }
  }
  return texts;
}
