// ESLint (flat config) for the dashboard's page code, internal/ui/assets,
// which the daemon embeds and so lives outside this package:
// `npm run lint:ui` runs it from the repository root (`-c` makes the root
// the base path; files outside a config's base path are not linted).
// ESLint's recommended rules, in the browser. The globals are listed, not
// taken from a browser preset: a preset declares `name`, `status`, `event`
// and the like, so a misspelt local would pass as the window's property.
// tsc checks the same files' JSDoc types (tsconfig.ui.json).
import js from "@eslint/js";

const browser = [
  "addEventListener", "removeEventListener", "location", "document", "sessionStorage",
  "fetch", "FormData", "URLSearchParams", "confirm", "setTimeout", "clearTimeout", "console",
];

export default [
  // Third-party builds, refreshed by `npm run ui:vendor`, not edited here.
  { ignores: ["internal/ui/assets/vendor/"] },
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
  {
    files: ["internal/ui/assets/**/*.js"],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: Object.fromEntries(browser.map((g) => [g, "readonly"])),
    },
    rules: {
      ...js.configs.recommended.rules,
      eqeqeq: "error",
      "prefer-const": "error",
      "no-var": "error",
    },
  },
];
