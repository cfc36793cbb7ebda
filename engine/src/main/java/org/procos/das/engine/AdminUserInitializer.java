package org.procos.das.engine;

import org.camunda.bpm.engine.IdentityService;
import org.camunda.bpm.engine.authorization.Groups;
import org.camunda.bpm.engine.identity.Group;
import org.camunda.bpm.engine.identity.User;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.ApplicationArguments;
import org.springframework.boot.ApplicationRunner;
import org.springframework.stereotype.Component;

/**
 * Creates the admin user named by das.engine.admin.user / das.engine.admin.password
 * (env DAS_ENGINE_ADMIN_USER / DAS_ENGINE_ADMIN_PASSWORD) when both are set.
 * The password is never logged.
 */
@Component
public class AdminUserInitializer implements ApplicationRunner {
  private static final Logger LOG = LoggerFactory.getLogger(AdminUserInitializer.class);

  private final IdentityService identityService;
  private final String userId;
  private final String password;

  public AdminUserInitializer(
      IdentityService identityService,
      @Value("${das.engine.admin.user:}") String userId,
      @Value("${das.engine.admin.password:}") String password) {
    this.identityService = identityService;
    this.userId = userId;
    this.password = password;
  }

  @Override
  public void run(ApplicationArguments args) {
    if (userId.isBlank() || password.isBlank()) {
      return;
    }
    User user = identityService.createUserQuery().userId(userId).singleResult();
    if (user == null) {
      user = identityService.newUser(userId);
      user.setFirstName(userId);
      user.setLastName("DAS");
      user.setPassword(password);
      identityService.saveUser(user);
    } else {
      user.setPassword(password);
      identityService.saveUser(user);
    }
    Group admins = identityService.createGroupQuery().groupId(Groups.CAMUNDA_ADMIN).singleResult();
    if (admins == null) {
      admins = identityService.newGroup(Groups.CAMUNDA_ADMIN);
      admins.setName("Administrators");
      admins.setType(Groups.GROUP_TYPE_SYSTEM);
      identityService.saveGroup(admins);
    }
    if (identityService.createUserQuery().userId(userId).memberOfGroup(Groups.CAMUNDA_ADMIN).count() == 0) {
      identityService.createMembership(userId, Groups.CAMUNDA_ADMIN);
    }
    LOG.info("DAS engine: admin user '{}' ready", userId);
  }
}
