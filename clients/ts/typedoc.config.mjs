// The API reference: `npm run docs` writes it to docs-api/ (not committed). Warnings are
// errors, so an export without a TSDoc comment or a broken {@link} fails the build.
import { OptionDefaults } from "typedoc";

/** @type {Partial<import("typedoc").TypeDocOptions>} */
export default {
  entryPoints: ["src/index.ts"],
  tsconfig: "tsconfig.build.json",
  out: "docs-api",
  name: "@runstatus/client",
  readme: "none",
  excludePrivate: true,
  disableSources: true, // no links to a repository host: the reference works offline
  // protoc-gen-es marks what it generated with @generated: a known tag, not a warning.
  blockTags: [...OptionDefaults.blockTags, "@generated"],
  treatWarningsAsErrors: true,
  validation: { notExported: false, invalidLink: true, notDocumented: true },
};
