// ESLint (flat config), run by `npm run lint` and `make lint`:
// typescript-eslint's strict, type-aware rules on the client and its tests,
// ESLint's recommended ones on the plain JavaScript (examples, this file).
// A suppression is `// eslint-disable-next-line rule -- reason`; unused
// ones are errors. Where a rule is tuned below, the comment says why.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "build/", "bin/", "node_modules/"] },
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
  js.configs.recommended,
  {
    files: ["**/*.mjs"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", setTimeout: "readonly", clearTimeout: "readonly", URL: "readonly" },
    },
  },
  {
    files: ["**/*.ts"],
    extends: [...tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: {
        project: ["./tsconfig.test.json", "./test/types/tsconfig.json"],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Numbers read as they should in messages; objects, undefined and
      // null ("[object Object]", "null") are still refused.
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // `() => resolve()` and `(err) => reject(err)` are callbacks, not values.
      "@typescript-eslint/no-confusing-void-expression": ["error", { ignoreArrowShorthand: true }],
      // node:test's describe/it/test return promises the runner awaits itself.
      // `const { omitted: _, ...rest } = o` is how a key is left out.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true }],
      // A handler may return its result or nothing: `R | void` is the one
      // type that takes both `async () => {}` and `async () => result`.
      "@typescript-eslint/no-invalid-void-type": "off",
      "@typescript-eslint/no-floating-promises": [
        "error",
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it", "test", "suite"] }] },
      ],
    },
  },
  {
    // Tests index what they have just asserted on (noUncheckedIndexedAccess
    // types jobs[0] as possibly undefined): a wrong `!` fails the test,
    // which is what a test is for.
    // Handlers and stand-ins are async to fit the signatures they stand
    // in for, whether or not they wait for anything.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off", "@typescript-eslint/require-await": "off" },
  },
  {
    // Type-level tests: tsc checks them and nothing runs them; their
    // `void expression;` statements exist to be type-checked.
    files: ["test/types/**/*.ts"],
    rules: { "@typescript-eslint/no-meaningless-void-operator": "off", "@typescript-eslint/no-unused-expressions": "off" },
  },
);
