// Starts the NHS.UK design system's components (header menu, error summary, …). Every page
// works without this.
import { initAll } from './nhsuk-frontend.min.js';

initAll();
