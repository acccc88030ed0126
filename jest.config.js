// Tests are compiled by `tsc` (npm run build) and run as native ES modules from dist/.
export default {
  testEnvironment: 'node',
  projects: [
    { displayName: 'unit', testEnvironment: 'node', testMatch: ['<rootDir>/dist/test/unit/**/*.test.js'] },
    { displayName: 'integration', testEnvironment: 'node', testMatch: ['<rootDir>/dist/test/integration/**/*.test.js'] },
    // With real Docker engines only: bash test/docker/run.sh
    { displayName: 'docker', testEnvironment: 'node', testMatch: ['<rootDir>/dist/test/docker/**/*.test.js'] },
    // On the e2e cluster only: bash test/e2e/run.sh
    { displayName: 'e2e', testEnvironment: 'node', testMatch: ['<rootDir>/dist/test/e2e/**/*.test.js'] },
    // Inside the user-mode Linux guest only: bash test/nfs/run.sh
    { displayName: 'nfs', testEnvironment: 'node', testMatch: ['<rootDir>/dist/test/nfs/**/*.test.js'] },
  ],
};
