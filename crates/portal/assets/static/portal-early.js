// Marks the page as having JavaScript before it is drawn, as the NHS.UK design system expects
// (it shows its enhanced components only then). Loaded as a file, not inline, so the
// Content-Security-Policy can forbid inline scripts.
document.body.className += ' js-enabled' + ('noModule' in HTMLScriptElement.prototype ? ' nhsuk-frontend-supported' : '');
