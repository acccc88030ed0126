// Tests are compiled by `tsc` (npm run build) and run as native ES modules from dist/.
export default {
  testEnvironment: 'node',
  projects: [
    { displayName: 'unit', testEnvironment: 'node', testMatch: ['<rootDir>/dist/test/unit/**/*.test.js'] },
    { displayName: 'integration', testEnvironment: 'node', testMatch: ['<rootDir>/dist/test/integration/**/*.test.js'] },
  ],
};
